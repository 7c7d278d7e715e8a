//! Customer tokens: how a merchant's server vouches, to a browser call, for which Stripe
//! customer is signed in. A compact JWT (RFC 7519) signed with HS256, so any JWT library (or
//! `openssl dgst -sha256 -hmac`) mints one:
//!
//! ```text
//! base64url({"alg":"HS256","typ":"JWT"}) . base64url({"customer":"cus_…","client_reference_id":"user-42","exp":1796000000}) . base64url(HMAC-SHA256(secret, header.payload))
//! ```
//!
//! Hand-written rather than a JWT crate: verification is one HMAC the bundle already links
//! (`hmac`, `sha2`), and the crates bring their own crypto backends and every algorithm, where
//! accepting only HS256 is the point. The header must say `HS256` and nothing else (no `none`,
//! no asymmetric algorithm to confuse with the secret), the signature is compared in constant
//! time, and `exp` must be in the future but at most `MAX_LIFETIME_SECS` ahead.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::ids::CustomerId;

/// A token lives at most an hour: it is minted for one page view after the merchant's login.
pub const MAX_LIFETIME_SECS: i64 = 3600;
/// Tokens are a few hundred bytes; this stops a runaway header or body field.
const MAX_TOKEN_BYTES: usize = 2048;

/// What a valid token vouches for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomerClaims {
    pub customer: CustomerId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_reference_id: Option<String>,
    pub exp: i64,
}

#[derive(Debug, Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
}

/// Why a token was refused. The messages name no secret and no claim value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("not a compact JWT (header.payload.signature, base64url)")]
    Malformed,
    #[error("only HS256 tokens are accepted")]
    Algorithm,
    #[error("the signature does not match")]
    Signature,
    #[error("the token has expired")]
    Expired,
    #[error("the token lives longer than an hour")]
    TooLong,
    #[error("the claims are not {{customer, client_reference_id?, exp}}")]
    Claims,
}

/// Signs `claims` with `secret` (the merchant's server does this; `ops customer-token` and
/// the dev storefront too).
#[must_use]
pub fn mint(secret: &[u8], claims: &CustomerClaims) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("claims serialize"));
    let signing_input = format!("{header}.{payload}");
    let signature = URL_SAFE_NO_PAD.encode(
        mac(secret, signing_input.as_bytes())
            .finalize()
            .into_bytes(),
    );
    format!("{signing_input}.{signature}")
}

/// Verifies `token` at `now`.
///
/// # Errors
/// The token is malformed, not HS256, forged or tampered, expired, too long-lived, or its
/// claims are not the expected ones.
pub fn verify(secret: &[u8], token: &str, now: i64) -> Result<CustomerClaims, TokenError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let decode = |part: &str| {
        URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| TokenError::Malformed)
    };
    let header: Header =
        serde_json::from_slice(&decode(header)?).map_err(|_| TokenError::Malformed)?;
    if header.alg != "HS256" || header.typ.as_deref().is_some_and(|t| t != "JWT") {
        return Err(TokenError::Algorithm);
    }
    let signing_input = &token[..token.len() - signature.len() - 1];
    mac(secret, signing_input.as_bytes())
        .verify_slice(&decode(signature)?)
        .map_err(|_| TokenError::Signature)?;
    // Only a signed payload is read.
    let claims: CustomerClaims =
        serde_json::from_slice(&decode(payload)?).map_err(|_| TokenError::Claims)?;
    if claims.exp <= now {
        return Err(TokenError::Expired);
    }
    if claims.exp > now + MAX_LIFETIME_SECS {
        return Err(TokenError::TooLong);
    }
    if claims
        .client_reference_id
        .as_ref()
        .is_some_and(|r| r.is_empty() || r.chars().count() > 200 || r.chars().any(char::is_control))
    {
        return Err(TokenError::Claims);
    }
    Ok(claims)
}

fn mac(secret: &[u8], data: &[u8]) -> hmac::Hmac<Sha256> {
    let mut mac = hmac::Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(data);
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"a-customer-token-secret-of-32-bytes!";
    const NOW: i64 = 1_796_000_000;

    fn claims(exp: i64) -> CustomerClaims {
        CustomerClaims {
            customer: "cus_123".parse().unwrap(),
            client_reference_id: Some("user-42".into()),
            exp,
        }
    }

    fn forge(header: &str, payload: &str, secret: &[u8]) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let signature =
            URL_SAFE_NO_PAD.encode(mac(secret, input.as_bytes()).finalize().into_bytes());
        format!("{input}.{signature}")
    }

    #[test]
    fn a_minted_token_verifies() {
        let token = mint(SECRET, &claims(NOW + 600));
        assert_eq!(verify(SECRET, &token, NOW), Ok(claims(NOW + 600)));
    }

    /// The same bytes `openssl dgst -sha256 -hmac` produces, so a merchant can mint in a shell.
    #[test]
    fn the_signature_is_plain_hmac_sha256_of_header_dot_payload() {
        let token = forge(
            r#"{"alg":"HS256","typ":"JWT"}"#,
            r#"{"customer":"cus_123","exp":1796000600}"#,
            SECRET,
        );
        let claims = verify(SECRET, &token, NOW).unwrap();
        assert_eq!(claims.customer.as_str(), "cus_123");
        assert_eq!(claims.client_reference_id, None);
    }

    #[test]
    fn bad_tokens_are_refused_with_their_reason() {
        let good = mint(SECRET, &claims(NOW + 600));
        let (signed, _) = good.rsplit_once('.').unwrap();
        let payload_of =
            |c: &CustomerClaims| URL_SAFE_NO_PAD.encode(serde_json::to_vec(c).unwrap());
        let mut other = claims(NOW + 600);
        other.customer = "cus_999".parse().unwrap();
        let header = signed.split('.').next().unwrap();
        let swapped = format!(
            "{header}.{}.{}",
            payload_of(&other),
            good.rsplit('.').next().unwrap()
        );
        let cases: Vec<(String, TokenError)> = vec![
            (String::new(), TokenError::Malformed),
            ("a.b".into(), TokenError::Malformed),
            (format!("{good}.extra"), TokenError::Malformed),
            ("!!.??.##".into(), TokenError::Malformed),
            ("x".repeat(MAX_TOKEN_BYTES + 1), TokenError::Malformed),
            (format!("{signed}.AAAA"), TokenError::Signature),
            (swapped, TokenError::Signature),
            (
                mint(b"another-secret-entirely-of-32-bytes", &claims(NOW + 600)),
                TokenError::Signature,
            ),
            (
                forge(
                    r#"{"alg":"none","typ":"JWT"}"#,
                    r#"{"customer":"cus_1","exp":1796000600}"#,
                    SECRET,
                ),
                TokenError::Algorithm,
            ),
            (
                forge(
                    r#"{"alg":"RS256"}"#,
                    r#"{"customer":"cus_1","exp":1796000600}"#,
                    SECRET,
                ),
                TokenError::Algorithm,
            ),
            (
                forge(
                    r#"{"alg":"HS256","typ":"JWE"}"#,
                    r#"{"customer":"cus_1","exp":1796000600}"#,
                    SECRET,
                ),
                TokenError::Algorithm,
            ),
            (mint(SECRET, &claims(NOW)), TokenError::Expired),
            (
                mint(SECRET, &claims(NOW + MAX_LIFETIME_SECS + 1)),
                TokenError::TooLong,
            ),
            (
                forge(
                    r#"{"alg":"HS256"}"#,
                    r#"{"customer":"acct_1","exp":1796000600}"#,
                    SECRET,
                ),
                TokenError::Claims,
            ),
            (
                forge(
                    r#"{"alg":"HS256"}"#,
                    r#"{"customer":"cus_1","exp":1796000600,"admin":true}"#,
                    SECRET,
                ),
                TokenError::Claims,
            ),
            (
                forge(r#"{"alg":"HS256"}"#, r#"{"customer":"cus_1"}"#, SECRET),
                TokenError::Claims,
            ),
            (
                forge(
                    r#"{"alg":"HS256"}"#,
                    r#"{"customer":"cus_1","exp":1796000600,"client_reference_id":""}"#,
                    SECRET,
                ),
                TokenError::Claims,
            ),
        ];
        for (token, expected) in cases {
            assert_eq!(verify(SECRET, &token, NOW), Err(expected), "{token}");
        }
    }
}
