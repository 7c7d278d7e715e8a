//! Unsubscribe links: `GET /recovery/unsubscribe?token=…` (and RFC 8058 one-click `POST`).
//! The token names the hashed address and is signed with HMAC-SHA256, so nobody can opt
//! somebody else out, and the address itself never appears in a URL.

use hmac::{Hmac, KeyInit, Mac};
use http::{HeaderValue, Method, StatusCode, header};
use lambda_http::{Body, Request, Response};
use sha2::Sha256;

use super::{Recovery, RecoveryError};
use crate::config::Secret;
use crate::http as api;
use crate::mail::{EmailAddress, Mailer};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("token: not a valid unsubscribe token")]
pub struct InvalidToken;

fn mac(key: &Secret, address_hash: &str) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.expose().as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(b"unsubscribe:v1:");
    mac.update(address_hash.as_bytes());
    mac
}

/// `<address hash>.<hex HMAC>`.
#[must_use]
pub fn token(key: &Secret, address_hash: &str) -> String {
    format!(
        "{address_hash}.{}",
        hex::encode(mac(key, address_hash).finalize().into_bytes())
    )
}

/// The address hash a token stands for, if its signature holds (constant-time comparison).
///
/// # Errors
/// A token of the wrong shape, or whose signature does not hold.
pub fn verify(key: &Secret, token: &str) -> Result<String, InvalidToken> {
    let (hash, signature) = token.split_once('.').ok_or(InvalidToken)?;
    if hash.len() != 64
        || !hash
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    {
        return Err(InvalidToken);
    }
    let mut expected = [0u8; 32];
    hex::decode_to_slice(signature, &mut expected).map_err(|_| InvalidToken)?;
    mac(key, hash)
        .verify_slice(&expected)
        .map_err(|_| InvalidToken)?;
    Ok(hash.to_string())
}

impl<M: Mailer> Recovery<M> {
    /// The link every recovery email carries, for `address`.
    #[must_use]
    pub fn unsubscribe_url(&self, address: &EmailAddress) -> String {
        format!(
            "{}/recovery/unsubscribe?token={}",
            self.config.public_base_url,
            token(&self.config.unsubscribe_secret, &address.hashed())
        )
    }

    /// `GET|POST /recovery/unsubscribe?token=…`.
    ///
    /// # Errors
    /// A token that does not verify (400), or DynamoDB failed.
    pub async fn unsubscribe(&self, request: &Request) -> Result<(), RecoveryError> {
        let token = form_urlencoded::parse(request.uri().query().unwrap_or_default().as_bytes())
            .find(|(k, _)| k == "token")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        let hash = verify(&self.config.unsubscribe_secret, &token)?;
        self.store.unsubscribe(&hash, self.clock.now()).await?;
        tracing::info!(recipient = hash, "unsubscribed from recovery emails");
        Ok(())
    }

    /// The function's one route: `POST` answers JSON (one-click), `GET` a page.
    pub(super) async fn route(&self, request: &Request) -> Response<Body> {
        if request.method() != Method::GET && request.method() != Method::POST {
            return api::method_not_allowed("GET, POST");
        }
        match self.unsubscribe(request).await {
            Err(err) => api::error(&err),
            Ok(()) if request.method() == Method::POST => {
                api::json(StatusCode::OK, &serde_json::json!({"unsubscribed": true}))
            }
            Ok(()) => {
                let mut response = Response::new(Body::from(
                    "<!doctype html><html><body><h1>You are unsubscribed</h1><p>You will not receive cart reminders any more.</p></body></html>",
                ));
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/html; charset=utf-8"),
                );
                response
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_refuse_forgeries() {
        let key = Secret::new("unsubscribe-signing-key-of-32-bytes!");
        let hash = "a".repeat(64);
        let token = token(&key, &hash);
        assert_eq!(verify(&key, &token), Ok(hash.clone()));
        let other = Secret::new("another-key-another-key-another-key");
        assert_eq!(verify(&other, &token), Err(InvalidToken));
        let tampered = token.replacen('a', "b", 1);
        assert_eq!(verify(&key, &tampered), Err(InvalidToken));
        for bad in [
            "",
            ".",
            "abc",
            &format!("{hash}."),
            &format!("{hash}.zz"),
            &format!("{}.{}", "A".repeat(64), "0".repeat(64)),
        ] {
            assert_eq!(verify(&key, bad), Err(InvalidToken), "{bad}");
        }
    }
}
