//! A fault-injecting HTTP proxy: every request is forwarded to one upstream unless the
//! proxy's [`Faults`] decide otherwise. One sits between the stack and the Stripe simulator,
//! one between the stack and moto, so the bundle meets the failures of the real services
//! (Stripe's 500 and 429, SES throttling and unanswered sends, DynamoDB unavailable) on
//! the wire, through its real clients, without a line of the bundle knowing.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::{body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

/// What the proxy does with one request.
#[derive(Debug, Clone)]
pub enum Fault {
    Forward,
    /// Answered here; the upstream never sees the request.
    Answer(Canned),
    /// Forwarded (the upstream acts on it), and the caller gets `Canned` instead of the
    /// upstream's answer: "the request worked but the answer was lost".
    ForwardThenAnswer(Canned),
    /// Forwarded, and the answer held back this long: longer than the caller waits.
    ForwardThenHang(Duration),
}

/// A response the proxy makes up.
#[derive(Debug, Clone)]
pub struct Canned {
    pub status: StatusCode,
    pub content_type: &'static str,
    pub headers: &'static [(&'static str, &'static str)],
    pub body: &'static str,
}

/// What a request looks like to a fault policy.
pub struct Seen<'a> {
    pub method: &'a http::Method,
    pub path: &'a str,
    pub headers: &'a http::HeaderMap,
}

/// A fault policy: the fault for a request and its name in the report (`None`: forwarded).
pub trait Faults: Send + Sync + 'static {
    fn decide(&self, request: &Seen<'_>) -> (Fault, Option<&'static str>);
}

/// Faults injected, by name, and requests forwarded.
#[derive(Default)]
pub struct Tally {
    counts: Mutex<BTreeMap<&'static str, u64>>,
    /// Time the upstream took to answer, summed by name: how busy it was.
    upstream: Mutex<BTreeMap<&'static str, Duration>>,
}

impl Tally {
    fn add(&self, name: &'static str) {
        *self
            .counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(name)
            .or_default() += 1;
    }

    fn took(&self, name: &'static str, took: Duration) {
        *self
            .upstream
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(name)
            .or_default() += took;
    }

    /// The upstream's answer time, summed by name.
    pub fn upstream(&self) -> BTreeMap<&'static str, Duration> {
        self.upstream
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub fn snapshot(&self) -> BTreeMap<&'static str, u64> {
        self.counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

pub struct Proxy {
    pub port: u16,
    pub tally: Arc<Tally>,
}

/// Listens on a free loopback port and forwards to `upstream` (`http://127.0.0.1:PORT`).
///
/// # Errors
/// The port could not be bound.
pub async fn start(upstream: String, faults: Arc<dyn Faults>) -> std::io::Result<Proxy> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let port = listener.local_addr()?.port();
    let tally = Arc::new(Tally::default());
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let shared = Arc::new((upstream, faults, tally.clone(), client));
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let shared = shared.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let shared = shared.clone();
                    async move {
                        let (upstream, faults, tally, client) = &*shared;
                        Ok::<_, Infallible>(
                            relay(upstream, faults.as_ref(), tally, client, request).await,
                        )
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(Proxy { port, tally })
}

async fn relay(
    upstream: &str,
    faults: &dyn Faults,
    tally: &Tally,
    client: &Client<HttpConnector, Full<Bytes>>,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let Ok(body) = body
        .collect()
        .await
        .map(http_body_util::Collected::to_bytes)
    else {
        return canned(&Canned {
            status: StatusCode::BAD_REQUEST,
            content_type: "text/plain",
            headers: &[],
            body: "storm proxy: unreadable body",
        });
    };
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let (fault, name) = faults.decide(&Seen {
        method: &parts.method,
        path,
        headers: &parts.headers,
    });
    let name = name.unwrap_or("forwarded");
    tally.add(name);
    if let Fault::Answer(answer) = &fault {
        return canned(answer);
    }
    let mut forward = Request::builder()
        .method(parts.method.clone())
        .uri(format!("{upstream}{path}"));
    for (name, value) in &parts.headers {
        if name != header::HOST {
            forward = forward.header(name, value);
        }
    }
    let Ok(forward) = forward.body(Full::new(body)) else {
        return canned(&bad_gateway());
    };
    let started = Instant::now();
    let answer = match client.request(forward).await {
        Ok(response) => {
            let (parts, body) = response.into_parts();
            match body.collect().await {
                Ok(body) => Response::from_parts(parts, Full::new(body.to_bytes())),
                Err(_) => canned(&bad_gateway()),
            }
        }
        Err(_) => canned(&bad_gateway()),
    };
    tally.took(name, started.elapsed());
    match fault {
        Fault::ForwardThenAnswer(answer) => canned(&answer),
        Fault::ForwardThenHang(hold) => {
            tokio::time::sleep(hold.saturating_sub(started.elapsed())).await;
            answer
        }
        Fault::Forward | Fault::Answer(_) => answer,
    }
}

fn bad_gateway() -> Canned {
    Canned {
        status: StatusCode::BAD_GATEWAY,
        content_type: "text/plain",
        headers: &[],
        body: "storm proxy: the upstream did not answer",
    }
}

fn canned(answer: &Canned) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(answer.body.as_bytes())));
    *response.status_mut() = answer.status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(answer.content_type),
    );
    for (name, value) in answer.headers {
        headers.insert(*name, HeaderValue::from_static(value));
    }
    response
}
