//! The Lambda Runtime API (`2018-06-01`) as Lambda's RAPID serves it to a custom runtime, on
//! loopback: `GET …/invocation/next` blocks until the bench hands out an event, the
//! function answers with `POST …/invocation/{id}/response` or `…/error`, and a runtime that
//! cannot start may say so with `POST …/init/error`. The protocol is the one the
//! `lambda_runtime` crate speaks (its `requests.rs`, `types.rs`): the event is the body, the
//! context is in `Lambda-Runtime-*` headers, and the deadline header is required.
//!
//! Times are taken here, at the edge: when the event is handed out and when its answer has
//! been read in full, so the bench measures the function and not its own bookkeeping.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

const PREFIX: &str = "/2018-06-01/runtime";

/// How the function answered one invocation.
#[derive(Debug)]
pub enum Answer {
    Response(Bytes),
    /// `…/error`: the body is the runtime's diagnostic (`errorType`, `errorMessage`).
    Error(Bytes),
}

#[derive(Debug)]
pub struct Completion {
    pub answer: Answer,
    /// When `/next` handed the event out.
    pub handed_out: Instant,
    /// When the answer's body had been read.
    pub answered: Instant,
}

/// What the runtime did outside of an invocation.
#[derive(Debug)]
pub enum Lifecycle {
    /// The first `GET …/next`: the runtime finished its init.
    FirstNext(Instant),
    InitError(Bytes),
    /// A request the emulator does not serve, or an answer for an id it never handed out.
    Protocol(String),
}

struct Queued {
    id: String,
    body: Bytes,
    deadline_ms: u128,
    done: oneshot::Sender<Completion>,
}

struct Outstanding {
    handed_out: Instant,
    done: oneshot::Sender<Completion>,
}

struct Shared {
    function_arn: String,
    queue: tokio::sync::Mutex<mpsc::UnboundedReceiver<Queued>>,
    outstanding: Mutex<HashMap<String, Outstanding>>,
    lifecycle: mpsc::UnboundedSender<Lifecycle>,
    seen_next: Mutex<bool>,
}

pub struct RuntimeApi {
    pub addr: SocketAddr,
    enqueue: mpsc::UnboundedSender<Queued>,
    timeout_ms: u128,
    next_id: u64,
    server: JoinHandle<()>,
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl RuntimeApi {
    /// Serves on a free loopback port. Each event's deadline is now + 3 s (Lambda's default
    /// Timeout) until [`Self::set_timeout`] gives the function's own.
    ///
    /// # Errors
    /// No loopback port could be bound.
    pub async fn start(
        function_arn: String,
    ) -> std::io::Result<(Self, mpsc::UnboundedReceiver<Lifecycle>)> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (enqueue, queue) = mpsc::unbounded_channel();
        let (lifecycle, lifecycle_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            function_arn,
            queue: tokio::sync::Mutex::new(queue),
            outstanding: Mutex::new(HashMap::new()),
            lifecycle,
            seen_next: Mutex::new(false),
        });
        let server = tokio::spawn(serve(listener, shared));
        Ok((
            Self {
                addr,
                enqueue,
                timeout_ms: 3000,
                next_id: 0,
                server,
            },
            lifecycle_rx,
        ))
    }

    /// The function's Timeout, which each event's deadline header carries (now + timeout).
    pub fn set_timeout(&mut self, timeout_secs: u64) {
        self.timeout_ms = u128::from(timeout_secs) * 1000;
    }

    /// Queues one event for the next `GET …/next`; the receiver resolves when the function
    /// answered it.
    pub fn invoke(&mut self, body: Bytes) -> oneshot::Receiver<Completion> {
        self.next_id += 1;
        let (done, answered) = oneshot::channel();
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        // A dropped receiver only means the bench stopped this row.
        let _ = self.enqueue.send(Queued {
            id: request_id(self.next_id),
            body,
            deadline_ms: now_ms + self.timeout_ms,
            done,
        });
        answered
    }
}

/// A UUID-shaped id, as Lambda's request ids are.
fn request_id(n: u64) -> String {
    format!(
        "{:08x}-{:04x}-4000-8000-{:012x}",
        std::process::id(),
        n >> 48,
        n & 0xffff_ffff_ffff
    )
}

/// An X-Ray header like Lambda's (`Root=1-<epoch hex>-<96 bits>`), not sampled.
fn trace_id(id: &str) -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let digits: String = id.chars().filter(char::is_ascii_hexdigit).collect();
    let root = &digits[digits.len().saturating_sub(24)..];
    let parent = &digits[..16.min(digits.len())];
    format!("Root=1-{secs:08x}-{root:0>24};Parent={parent:0>16};Sampled=0")
}

async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        // Small request/answer pairs on a kept-alive connection: no Nagle delay.
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(route(&shared, request).await) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn answer(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

async fn route(shared: &Shared, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_string();
    let Some(rest) = path.strip_prefix(PREFIX) else {
        let _ = shared
            .lifecycle
            .send(Lifecycle::Protocol(format!("{} {path}", request.method())));
        return answer(StatusCode::NOT_FOUND, r#"{"errorMessage":"not found"}"#);
    };
    let segments: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
    match (request.method(), segments.as_slice()) {
        (&Method::GET, ["invocation", "next"]) => next(shared).await,
        (&Method::POST, ["invocation", id, kind @ ("response" | "error")]) => {
            let id = (*id).to_string();
            let is_error = *kind == "error";
            let body = request
                .into_body()
                .collect()
                .await
                .map(http_body_util::Collected::to_bytes)
                .unwrap_or_default();
            let answered = Instant::now();
            let Some(outstanding) = shared.outstanding.lock().expect("lock").remove(&id) else {
                let _ = shared.lifecycle.send(Lifecycle::Protocol(format!(
                    "an answer for unknown request id {id}"
                )));
                return answer(
                    StatusCode::BAD_REQUEST,
                    r#"{"errorType":"InvalidRequestID","errorMessage":"unknown request id"}"#,
                );
            };
            let answer_body = if is_error {
                Answer::Error(body)
            } else {
                Answer::Response(body)
            };
            let _ = outstanding.done.send(Completion {
                answer: answer_body,
                handed_out: outstanding.handed_out,
                answered,
            });
            answer(StatusCode::ACCEPTED, r#"{"status":"OK"}"#)
        }
        (&Method::POST, ["init", "error"]) => {
            let body = request
                .into_body()
                .collect()
                .await
                .map(http_body_util::Collected::to_bytes)
                .unwrap_or_default();
            let _ = shared.lifecycle.send(Lifecycle::InitError(body));
            answer(StatusCode::ACCEPTED, r#"{"status":"OK"}"#)
        }
        (method, _) => {
            let _ = shared
                .lifecycle
                .send(Lifecycle::Protocol(format!("{method} {path}")));
            answer(StatusCode::NOT_FOUND, r#"{"errorMessage":"not found"}"#)
        }
    }
}

/// Blocks until an event is queued, as RAPID does between invocations.
async fn next(shared: &Shared) -> Response<Full<Bytes>> {
    {
        let mut seen = shared.seen_next.lock().expect("lock");
        if !*seen {
            *seen = true;
            let _ = shared.lifecycle.send(Lifecycle::FirstNext(Instant::now()));
        }
    }
    let Some(queued) = shared.queue.lock().await.recv().await else {
        return answer(
            StatusCode::INTERNAL_SERVER_ERROR,
            r#"{"errorMessage":"stopped"}"#,
        );
    };
    let mut response = Response::new(Full::new(queued.body));
    let headers = response.headers_mut();
    let mut set = |name: &'static str, value: &str| {
        if let Ok(value) = http::HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    };
    set("content-type", "application/json");
    set("lambda-runtime-aws-request-id", &queued.id);
    set(
        "lambda-runtime-deadline-ms",
        &queued.deadline_ms.to_string(),
    );
    set("lambda-runtime-invoked-function-arn", &shared.function_arn);
    set("lambda-runtime-trace-id", &trace_id(&queued.id));
    shared.outstanding.lock().expect("lock").insert(
        queued.id,
        Outstanding {
            handed_out: Instant::now(),
            done: queued.done,
        },
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

    async fn call(
        client: &HttpClient,
        method: Method,
        url: String,
        body: &[u8],
    ) -> (StatusCode, http::HeaderMap, Bytes) {
        let request = Request::builder()
            .method(method)
            .uri(url)
            .body(Full::new(Bytes::copy_from_slice(body)))
            .unwrap();
        let (parts, body) = client.request(request).await.unwrap().into_parts();
        (
            parts.status,
            parts.headers,
            body.collect().await.unwrap().to_bytes(),
        )
    }

    /// A runtime loop like lambda_runtime's: next, then echo the event back, or report an
    /// error for an event that says so.
    async fn fake_runtime(base: String) {
        let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
        loop {
            let (status, headers, event) = call(
                &client,
                Method::GET,
                format!("{base}{PREFIX}/invocation/next"),
                b"",
            )
            .await;
            assert_eq!(status, StatusCode::OK);
            let id = headers["lambda-runtime-aws-request-id"]
                .to_str()
                .unwrap()
                .to_string();
            let deadline: u128 = headers["lambda-runtime-deadline-ms"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!(
                deadline
                    > SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .unwrap()
                        .as_millis()
            );
            assert!(
                headers["lambda-runtime-trace-id"]
                    .to_str()
                    .unwrap()
                    .starts_with("Root=1-")
            );
            assert_eq!(headers["lambda-runtime-invoked-function-arn"], "arn:test");
            let kind = if event.as_ref() == b"fail" {
                "error"
            } else {
                "response"
            };
            let (status, _, _) = call(
                &client,
                Method::POST,
                format!("{base}{PREFIX}/invocation/{id}/{kind}"),
                &event,
            )
            .await;
            assert_eq!(status, StatusCode::ACCEPTED);
        }
    }

    #[tokio::test]
    async fn events_are_handed_out_in_order_and_answers_come_back_timed() {
        let (mut api, mut lifecycle) = RuntimeApi::start("arn:test".into()).await.unwrap();
        let runtime = tokio::spawn(fake_runtime(format!("http://{}", api.addr)));
        let Some(Lifecycle::FirstNext(_)) = lifecycle.recv().await else {
            panic!("the first /next is reported");
        };
        for body in ["one", "two", "fail", "three"] {
            let done = api.invoke(Bytes::from(body)).await.unwrap();
            assert!(done.answered >= done.handed_out);
            match (body, done.answer) {
                ("fail", Answer::Error(b)) => assert_eq!(b.as_ref(), b"fail"),
                (_, Answer::Response(b)) => assert_eq!(b.as_ref(), body.as_bytes()),
                (_, other) => panic!("{body}: {other:?}"),
            }
        }
        runtime.abort();
    }

    #[tokio::test]
    async fn init_errors_and_unknown_ids_are_reported() {
        let (api, mut lifecycle) = RuntimeApi::start("arn:test".into()).await.unwrap();
        let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
        let base = format!("http://{}{PREFIX}", api.addr);
        let (status, _, _) = call(
            &client,
            Method::POST,
            format!("{base}/init/error"),
            b"{\"errorType\":\"x\"}",
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED);
        let Some(Lifecycle::InitError(body)) = lifecycle.recv().await else {
            panic!("init error reported");
        };
        assert_eq!(body.as_ref(), b"{\"errorType\":\"x\"}");
        let (status, _, _) = call(
            &client,
            Method::POST,
            format!("{base}/invocation/nope/response"),
            b"{}",
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(matches!(
            lifecycle.recv().await,
            Some(Lifecycle::Protocol(_))
        ));
    }
}
