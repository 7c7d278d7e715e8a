//! A small hyper server that turns each request into the `lambda_http::Request` API Gateway
//! would deliver and routes it to the handler the Lambda runs. hyper is already the HTTP
//! stack of lambda_http and the AWS SDK, so this adds no second stack.

use std::{convert::Infallible, net::SocketAddr, sync::Arc};

use bytes::Bytes;
use checkout_core::{checkout, fulfillment, http as api, lambda::StreamAndHttp, webhook};
use http_body_util::{BodyExt, Full, Limited};
use hyper::{body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use lambda_http::{Body, Request, Response};
use tokio::net::TcpListener;

use crate::Bundle;

/// API Gateway's own cap is 10 MB; the bundle's handlers refuse far less, so reading stops
/// one byte past the largest body any handler accepts.
const READ_LIMIT: usize = webhook::MAX_BODY_BYTES;

pub async fn route(bundle: &Bundle, request: Request) -> Response<Body> {
    let path = request.uri().path();
    if path == "/webhooks/stripe" {
        return webhook::handle(&bundle.webhook, request).await;
    }
    let stripe = &bundle.stripe;
    match path {
        "/checkout/sessions" | checkout::PAYMENTS_PATH => {
            checkout::handle(&stripe.checkout, request).await
        }
        // `POST /checkout/sessions/{id}/expire`, the merchant server's call.
        p if p.starts_with(checkout::SESSIONS_PREFIX) && p.ends_with(checkout::EXPIRE_SUFFIX) => {
            checkout::handle(&stripe.checkout, request).await
        }
        "/checkout/complete" | fulfillment::PAYMENT_LANDING_PATH => {
            stripe.fulfillment.http(request, None).await
        }
        "/recovery/unsubscribe" => stripe.recovery.http(request, None).await,
        _ => match bundle.storefront.page(&request).await {
            Some(page) => page,
            None => api::not_found(),
        },
    }
}

async fn answer(
    bundle: Arc<Bundle>,
    request: hyper::Request<Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    // API Gateway refuses bodies over its own cap before the function runs; locally, each
    // route's handler limit is the cap, so the 413 names the limit the README gives.
    let limit = match parts.uri.path() {
        "/checkout/sessions" | checkout::PAYMENTS_PATH => checkout::MAX_BODY_BYTES,
        _ => READ_LIMIT,
    };
    let response = match Limited::new(body, limit + 1).collect().await {
        Err(err) if err.is::<http_body_util::LengthLimitError>() => api::payload_too_large(limit),
        // A body that could not be read (bad chunked encoding, a dropped connection) is the
        // client's error, not a size.
        Err(err) => {
            tracing::warn!(error = %err, "request body unreadable");
            api::unreadable_body()
        }
        Ok(collected) => {
            let request = Request::from_parts(parts, Body::from(collected.to_bytes().to_vec()));
            let method = request.method().clone();
            let path = request.uri().path().to_string();
            let response = route(&bundle, request).await;
            tracing::info!(%method, path, status = response.status().as_u16(), "served");
            response
        }
    };
    let (parts, body) = response.into_parts();
    Ok(hyper::Response::from_parts(
        parts,
        Full::new(Bytes::copy_from_slice(&body)),
    ))
}

pub async fn serve(bundle: Arc<Bundle>, port: u16) -> Result<(), Box<dyn std::error::Error>> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let listener = TcpListener::bind(addr).await?;
    tracing::info!(
        "bundle listening on http://{addr} (POST /webhooks/stripe, POST /checkout/sessions, POST /checkout/sessions/{{id}}/expire, POST /payments, GET /checkout/complete, GET /payments/complete, /recovery/unsubscribe)"
    );
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => accepted?,
            _ = tokio::signal::ctrl_c() => {
                tracing::info!("stopping");
                return Ok(());
            }
        };
        let bundle = bundle.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| answer(bundle.clone(), request));
            if let Err(err) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(error = %err, "connection closed with an error");
            }
        });
    }
}
