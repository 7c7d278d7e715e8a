//! `POST /checkout/sessions/{id}/expire`: the merchant's server closes an open cart (stock ran
//! out elsewhere, the cart changed, the customer logged out). The session is expired at
//! Stripe, its stock returned once, and the answer is the same however often it is asked:
//! `{"id": "cs_…", "status": "expired"}`.
//!
//! A server call only (`Authorization: Bearer <MERCHANT_API_KEY>`), and only for sessions
//! this bundle created: the session's record names its connected account, and an unknown id
//! is answered 404 without a Stripe call.

use http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde::Serialize;

use super::{CheckoutError, InvalidField, SessionCreator};
use crate::callers::{Caller, CallerError};
use crate::http as api;
use crate::ids::SessionId;
use crate::stripe::{ErrorKind, RequestOptions, SessionStatus, StripeError};

/// The route's last segment; the session id comes before it.
pub const EXPIRE_SUFFIX: &str = "/expire";
pub const SESSIONS_PREFIX: &str = "/checkout/sessions/";

#[derive(Debug, Serialize)]
struct Expired<'a> {
    id: &'a SessionId,
    status: &'static str,
}

/// The session id of an expire route's path, when it is one.
pub(super) fn expire_target(path: &str) -> Option<&str> {
    path.strip_prefix(SESSIONS_PREFIX)?
        .strip_suffix(EXPIRE_SUFFIX)
        .filter(|id| !id.is_empty() && !id.contains('/'))
}

pub(super) async fn expire(
    creator: &SessionCreator,
    request: &Request,
    raw_id: &str,
) -> Result<Response<Body>, CheckoutError> {
    if creator.callers().identify(request.headers())? != Caller::Server {
        return Err(CallerError::Unauthorized.into());
    }
    let id: SessionId = raw_id
        .parse()
        .map_err(|_| InvalidField::new("id", "not a Checkout Session id (cs_…)"))?;
    let record = creator
        .sessions
        .get(&id)
        .await?
        .ok_or(CheckoutError::UnknownSession)?;
    let options = RequestOptions {
        account: record.account.as_ref(),
        idempotency_key: None,
    };
    match creator.stripe.expire_checkout_session(&id, options).await {
        Ok(_) => {}
        // Not open any more: expired already (answer as if now), or paid (say so).
        Err(StripeError::Api {
            kind: ErrorKind::InvalidRequest,
            status: 400,
            ..
        }) => {
            let session = creator
                .stripe
                .retrieve_checkout_session(&id, record.account.as_ref())
                .await?;
            match session.status {
                Some(SessionStatus::Expired) => {}
                Some(SessionStatus::Complete) => return Err(CheckoutError::SessionComplete),
                // Still open although Stripe refused: it can still be paid, so its units
                // stay taken and the caller hears Stripe's refusal.
                _ => return Err(err_not_open(&id).into()),
            }
        }
        Err(other) => return Err(other.into()),
    }
    // The expired event releases too; whichever comes first returns the units, once.
    let released = creator.stock.release(&id).await?;
    tracing::info!(session_id = %id, account = record.account.as_ref().map(|a| a.as_str()), ?released, "checkout session expired on request");
    Ok(api::json(
        StatusCode::OK,
        &Expired {
            id: &id,
            status: "expired",
        },
    ))
}

/// Stripe refused to expire a session it still reports open.
fn err_not_open(id: &SessionId) -> StripeError {
    StripeError::Api {
        kind: ErrorKind::InvalidRequest,
        status: 400,
        code: None,
        param: None,
        message: format!("Stripe refused to expire {id}, which is still open"),
        request_id: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_id_then_expire_is_an_expire_route() {
        assert_eq!(
            expire_target("/checkout/sessions/cs_test_1/expire"),
            Some("cs_test_1")
        );
        for path in [
            "/checkout/sessions",
            "/checkout/sessions//expire",
            "/checkout/sessions/a/b/expire",
            "/checkout/sessions/cs_1/expired",
        ] {
            assert_eq!(expire_target(path), None, "{path}");
        }
    }
}
