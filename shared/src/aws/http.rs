//! The AWS SDK's transport over the bundle's own HTTP/1.1 client (hyper with the shared
//! rustls configuration, [`crate::tls`]), in place of `aws-smithy-http-client`'s: that one
//! brings HTTP/2 (h2) and builds a second TLS configuration with its own read of the root
//! store, and the bundle needs neither. The SDK's orchestrator keeps what matters above the
//! transport: signing, retries, the attempt and operation timeouts; the connect timeout is
//! applied here, from the settings the SDK passes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::Response;
use aws_smithy_types::body::SdkBody;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector as TcpConnector;
use hyper_util::rt::TokioExecutor;

type Https = hyper_rustls::HttpsConnector<TcpConnector>;

/// An [`HttpClient`] for the SDK: one pooled hyper client per connect timeout (the SDK
/// asks with the same settings for every call, so in practice one).
#[derive(Debug, Clone, Default)]
pub struct SdkHttpClient {
    connectors: Arc<Mutex<HashMap<Option<Duration>, SharedHttpConnector>>>,
}

impl SdkHttpClient {
    #[must_use]
    pub fn shared() -> SharedHttpClient {
        SharedHttpClient::new(Self::default())
    }
}

impl HttpClient for SdkHttpClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        let timeout = settings.connect_timeout();
        self.connectors
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(timeout)
            .or_insert_with(|| {
                SharedHttpConnector::new(Connector {
                    client: Client::builder(TokioExecutor::new())
                        // Under DynamoDB's and SES's idle close (about a minute), so a pooled
                        // connection is not reused just as the server drops it.
                        .pool_idle_timeout(Duration::from_secs(30))
                        .build(crate::tls::https_connector(timeout)),
                })
            })
            .clone()
    }
}

#[derive(Debug, Clone)]
struct Connector {
    client: Client<Https, SdkBody>,
}

impl HttpConnector for Connector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let request = match request.try_into_http1x() {
            Ok(request) => request,
            Err(err) => return HttpConnectorFuture::ready(Err(ConnectorError::user(err.into()))),
        };
        let response = self.client.request(request);
        HttpConnectorFuture::new(async move {
            let response = response.await.map_err(classify)?;
            Response::try_from(response.map(SdkBody::from_body_1_x))
                .map_err(|err| ConnectorError::other(err.into(), None))
        })
    }
}

/// What the SDK's retry policy needs to know: a connection that could not be made, or
/// broke (an I/O error anywhere in the chain, a closed or incomplete message), is transient
/// and retried within the attempt budget; anything else is reported as is. A request may
/// have reached DynamoDB before the connection broke, which the bundle's conditional writes
/// make safe to send again.
fn classify(err: hyper_util::client::legacy::Error) -> ConnectorError {
    let mut broken = err.is_connect();
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        broken |= cause.is::<std::io::Error>()
            || cause
                .downcast_ref::<hyper::Error>()
                .is_some_and(|e| e.is_closed() || e.is_canceled() || e.is_incomplete_message());
        source = cause.source();
    }
    if broken {
        ConnectorError::io(err.into())
    } else {
        ConnectorError::other(err.into(), None)
    }
}
