//! An in-process stand-in for DynamoDB and SSM Parameter Store on loopback HTTP: it answers
//! at once, so a row against it measures the function's own work (signature checks, parsing,
//! building and signing AWS requests, serialization) with the backend's time near zero.
//!
//! It answers what the bench's invocations need and nothing more: writes succeed with `{}`,
//! reads find nothing, and `GetParameters` returns the bench's secrets. Any other operation
//! is answered with an error and recorded, so a row that needed it fails honestly instead of
//! measuring a fake success.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

#[derive(Default)]
struct Counters {
    calls: BTreeMap<String, u64>,
    unsupported: Vec<String>,
}

pub struct Stub {
    pub url: String,
    counters: Arc<Mutex<Counters>>,
    parameters: Arc<Mutex<BTreeMap<String, String>>>,
    server: JoinHandle<()>,
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Stub {
    /// A stub whose Parameter Store is empty until [`Self::set_parameters`].
    ///
    /// # Errors
    /// No loopback port could be bound.
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let counters = Arc::new(Mutex::new(Counters::default()));
        let parameters = Arc::new(Mutex::new(BTreeMap::new()));
        let server = tokio::spawn(serve(listener, parameters.clone(), counters.clone()));
        Ok(Self {
            url,
            counters,
            parameters,
            server,
        })
    }

    /// SSM parameter name → value: what `GetParameters` finds.
    pub fn set_parameters(&self, parameters: BTreeMap<String, String>) {
        *self.parameters.lock().expect("lock") = parameters;
    }

    /// Calls served so far, by operation (`DynamoDB.PutItem`, `SSM.GetParameters`).
    #[must_use]
    pub fn calls(&self) -> BTreeMap<String, u64> {
        self.counters.lock().expect("lock").calls.clone()
    }

    /// What the stub was asked and could not serve.
    #[must_use]
    pub fn unsupported(&self) -> Vec<String> {
        self.counters.lock().expect("lock").unsupported.clone()
    }
}

async fn serve(
    listener: TcpListener,
    parameters: Arc<Mutex<BTreeMap<String, String>>>,
    counters: Arc<Mutex<Counters>>,
) {
    loop {
        let Ok((stream, _)): std::io::Result<(tokio::net::TcpStream, SocketAddr)> =
            listener.accept().await
        else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let parameters = parameters.clone();
        let counters = counters.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let parameters = parameters.clone();
                let counters = counters.clone();
                async move { Ok::<_, Infallible>(answer(&parameters, &counters, request).await) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn json_response(
    status: StatusCode,
    content_type: &'static str,
    body: &Value,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    headers.insert(
        "x-amzn-requestid",
        http::HeaderValue::from_static("00000000-0000-4000-8000-000000000000"),
    );
    response
}

async fn answer(
    parameters: &Mutex<BTreeMap<String, String>>,
    counters: &Mutex<Counters>,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let target = request
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    // The SDK's request is read whole, as a service would, before answering.
    let body = request
        .into_body()
        .collect()
        .await
        .map(http_body_util::Collected::to_bytes)
        .unwrap_or_default();
    let (service, operation) = target.split_once('.').unwrap_or(("", target.as_str()));
    let (name, result) = match service {
        "DynamoDB_20120810" => (format!("DynamoDB.{operation}"), dynamodb(operation, &body)),
        "AmazonSSM" => {
            let parameters = parameters.lock().expect("lock").clone();
            (
                format!("SSM.{operation}"),
                ssm(operation, &body, &parameters),
            )
        }
        _ => (
            format!("unknown target {target:?}"),
            Err(format!("no X-Amz-Target this stub knows: {target:?}")),
        ),
    };
    let mut counters = counters.lock().expect("lock");
    *counters.calls.entry(name.clone()).or_default() += 1;
    match result {
        Ok((content_type, body)) => json_response(StatusCode::OK, content_type, &body),
        Err(reason) => {
            if counters.unsupported.len() < 20 {
                counters.unsupported.push(format!("{name}: {reason}"));
            }
            let content_type = if service == "AmazonSSM" {
                "application/x-amz-json-1.1"
            } else {
                "application/x-amz-json-1.0"
            };
            json_response(
                StatusCode::BAD_REQUEST,
                content_type,
                &json!({
                    "__type": "com.amazon.coral.service#UnknownOperationException",
                    "message": format!("the bench's stub does not serve {name}: {reason}"),
                }),
            )
        }
    }
}

type Answered = Result<(&'static str, Value), String>;

fn dynamodb(operation: &str, body: &[u8]) -> Answered {
    const JSON_10: &str = "application/x-amz-json-1.0";
    let parsed = || serde_json::from_slice::<Value>(body).map_err(|e| format!("request: {e}"));
    let answer = match operation {
        // Writes succeed (conditions hold: nothing is stored) with no attributes returned,
        // and a GetItem finds nothing: both are `{}`.
        "PutItem" | "UpdateItem" | "DeleteItem" | "TransactWriteItems" | "GetItem" => json!({}),
        "Query" | "Scan" => json!({"Items": [], "Count": 0, "ScannedCount": 0}),
        "BatchGetItem" => {
            let request = parsed()?;
            let tables: serde_json::Map<String, Value> = request["RequestItems"]
                .as_object()
                .map(|items| items.keys().map(|t| (t.clone(), json!([]))).collect())
                .unwrap_or_default();
            json!({"Responses": tables, "UnprocessedKeys": {}})
        }
        "BatchWriteItem" => json!({"UnprocessedItems": {}}),
        "TransactGetItems" => {
            let request = parsed()?;
            let n = request["TransactItems"].as_array().map_or(0, Vec::len);
            json!({"Responses": vec![json!({}); n]})
        }
        "DescribeTable" => {
            let request = parsed()?;
            let table = request["TableName"].as_str().unwrap_or_default();
            json!({"Table": {
                "TableName": table,
                "TableStatus": "ACTIVE",
                "TableArn": format!("arn:aws:dynamodb:us-east-1:123456789012:table/{table}"),
            }})
        }
        other => return Err(format!("DynamoDB operation {other} is not stubbed")),
    };
    Ok((JSON_10, answer))
}

fn ssm(operation: &str, body: &[u8], parameters: &BTreeMap<String, String>) -> Answered {
    if operation != "GetParameters" {
        return Err(format!("SSM operation {operation} is not stubbed"));
    }
    let request: Value = serde_json::from_slice(body).map_err(|e| format!("request: {e}"))?;
    let mut found = Vec::new();
    let mut invalid = Vec::new();
    for name in request["Names"].as_array().into_iter().flatten() {
        let name = name.as_str().unwrap_or_default();
        match parameters.get(name) {
            Some(value) => found.push(json!({
                "Name": name,
                "Type": "SecureString",
                "Value": value,
                "Version": 1,
                "DataType": "text",
                "ARN": format!("arn:aws:ssm:us-east-1:123456789012:parameter{name}"),
            })),
            None => invalid.push(json!(name)),
        }
    }
    Ok((
        "application/x-amz-json-1.1",
        json!({"Parameters": found, "InvalidParameters": invalid}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_succeed_reads_find_nothing_and_the_rest_is_refused() {
        assert_eq!(dynamodb("PutItem", b"{}").unwrap().1, json!({}));
        assert_eq!(dynamodb("Query", b"{}").unwrap().1["Count"], 0);
        let batch = dynamodb("BatchGetItem", br#"{"RequestItems":{"t":{"Keys":[]}}}"#).unwrap();
        assert_eq!(batch.1["Responses"]["t"], json!([]));
        assert!(dynamodb("CreateTable", b"{}").is_err());
    }

    #[test]
    fn get_parameters_finds_the_benchs_secrets_only() {
        let parameters = BTreeMap::from([("/bench/a".to_string(), "A".to_string())]);
        let (_, answer) = ssm(
            "GetParameters",
            br#"{"Names":["/bench/a","/bench/b"],"WithDecryption":true}"#,
            &parameters,
        )
        .unwrap();
        assert_eq!(answer["Parameters"][0]["Value"], "A");
        assert_eq!(answer["InvalidParameters"], json!(["/bench/b"]));
        assert!(ssm("PutParameter", b"{}", &parameters).is_err());
    }
}
