//! `Stripe-Signature` verification, as Stripe specifies it.
//!
//! The header is `t=<unix seconds>,v1=<hex hmac>[,v1=…][,v0=…]`. The signed payload is
//! `"{t}.{raw body}"`, HMAC-SHA256 keyed by the endpoint secret. Several `v1` appear while
//! Stripe rolls a secret: any one matching any configured secret is enough. `v0` (test-mode
//! legacy) and unknown schemes are ignored.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::config::Secret;

type HmacSha256 = Hmac<Sha256>;

/// Stripe's default tolerance between the signed timestamp and now.
pub const DEFAULT_TOLERANCE_SECS: u64 = 300;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the Stripe-Signature header is missing")]
    MissingHeader,
    #[error("the Stripe-Signature header is malformed: {0}")]
    MalformedHeader(&'static str),
    #[error("the Stripe-Signature header has no v1 signature")]
    NoV1Signature,
    #[error(
        "the Stripe-Signature timestamp is {age_secs} s away from now, over the {tolerance_secs} s tolerance (replayed or clock skew)"
    )]
    OutsideTolerance { age_secs: i64, tolerance_secs: u64 },
    #[error("no v1 signature matches the payload with any configured webhook secret")]
    Mismatch,
}

/// The endpoint secrets accepted at once: the current one, the one being rolled, and the
/// Connect endpoint's, as `STRIPE_WEBHOOK_SECRET=whsec_a,whsec_b`.
#[derive(Debug, Clone)]
pub struct WebhookSecrets(Vec<Secret>);

impl WebhookSecrets {
    /// # Errors
    /// No secret, or one that is not a `whsec_` secret.
    pub fn parse(list: &str) -> Result<Self, String> {
        let secrets: Vec<Secret> = list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                if s.starts_with("whsec_") {
                    Ok(Secret::new(s))
                } else {
                    Err(
                        "each secret must start with whsec_ (a Stripe endpoint signing secret)"
                            .to_string(),
                    )
                }
            })
            .collect::<Result<_, _>>()?;
        if secrets.is_empty() {
            return Err("at least one whsec_ secret is needed".into());
        }
        Ok(Self(secrets))
    }
}

#[derive(Debug, Clone)]
pub struct Verifier {
    secrets: WebhookSecrets,
    tolerance_secs: u64,
}

/// The parts of the header verification uses; signatures that are not 32-byte hex can never
/// match and are dropped at parse time.
struct ParsedHeader {
    timestamp: i64,
    v1: Vec<[u8; 32]>,
}

fn parse_header(header: &[u8]) -> Result<ParsedHeader, SignatureError> {
    let header = std::str::from_utf8(header)
        .map_err(|_| SignatureError::MalformedHeader("not valid UTF-8"))?;
    let mut timestamp = None;
    let mut v1 = Vec::new();
    let mut saw_v1 = false;
    for part in header.split(',') {
        let Some((scheme, value)) = part.trim().split_once('=') else {
            continue;
        };
        match scheme {
            "t" if timestamp.is_none() => {
                let t = value
                    .parse::<i64>()
                    .map_err(|_| SignatureError::MalformedHeader("t is not a unix timestamp"))?;
                timestamp = Some(t);
            }
            "v1" => {
                saw_v1 = true;
                let mut sig = [0u8; 32];
                if hex::decode_to_slice(value, &mut sig).is_ok() {
                    v1.push(sig);
                }
            }
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::MalformedHeader("no t= timestamp"))?;
    if !saw_v1 {
        return Err(SignatureError::NoV1Signature);
    }
    Ok(ParsedHeader { timestamp, v1 })
}

impl Verifier {
    #[must_use]
    pub fn new(secrets: WebhookSecrets, tolerance_secs: u64) -> Self {
        Self {
            secrets,
            tolerance_secs,
        }
    }

    /// Verifies `payload` (the exact raw body bytes) against the header at time `now`.
    ///
    /// # Errors
    /// No header, a malformed one, a timestamp outside the tolerance, or no signature that matches.
    pub fn verify(
        &self,
        header: Option<&[u8]>,
        payload: &[u8],
        now: i64,
    ) -> Result<(), SignatureError> {
        let header = parse_header(header.ok_or(SignatureError::MissingHeader)?)?;
        let timestamp = header.timestamp.to_string();
        let matches = self.secrets.0.iter().any(|secret| {
            let mac = signed_payload_mac(secret, &timestamp, payload);
            // verify_slice compares in constant time; each candidate gets its own clone.
            header
                .v1
                .iter()
                .any(|candidate| mac.clone().verify_slice(candidate).is_ok())
        });
        if !matches {
            return Err(SignatureError::Mismatch);
        }
        // Checked after the signature, like Stripe's libraries, so a stale genuine event is
        // reported as stale rather than forged. Future timestamps are refused too: a signer
        // that far ahead is not Stripe's clock.
        let age_secs = now.saturating_sub(header.timestamp);
        if age_secs.unsigned_abs() > self.tolerance_secs {
            return Err(SignatureError::OutsideTolerance {
                age_secs,
                tolerance_secs: self.tolerance_secs,
            });
        }
        Ok(())
    }
}

fn signed_payload_mac(secret: &Secret, timestamp: &str, payload: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret.expose().as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(payload);
    mac
}

/// Builds a `Stripe-Signature` header value the way Stripe does. Production never signs; the
/// tests, the local Stripe simulator and `make dev` examples do, with the same code that verifies.
#[must_use]
pub fn sign(secret: &Secret, timestamp: i64, payload: &[u8]) -> String {
    let tag = signed_payload_mac(secret, &timestamp.to_string(), payload).finalize();
    format!("t={timestamp},v1={}", hex::encode(tag.into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000;
    const BODY: &[u8] = br#"{"id":"evt_1","object":"event"}"#;

    fn secret(s: &str) -> Secret {
        Secret::new(s)
    }

    fn verifier(list: &str) -> Verifier {
        Verifier::new(WebhookSecrets::parse(list).unwrap(), DEFAULT_TOLERANCE_SECS)
    }

    fn check(v: &Verifier, header: &str, body: &[u8]) -> Result<(), SignatureError> {
        v.verify(Some(header.as_bytes()), body, NOW)
    }

    #[test]
    fn accepts_a_valid_signature() {
        let header = sign(&secret("whsec_a"), NOW, BODY);
        assert_eq!(check(&verifier("whsec_a"), &header, BODY), Ok(()));
    }

    #[test]
    fn accepts_when_any_of_several_v1_matches() {
        let good = sign(&secret("whsec_a"), NOW, BODY);
        let good_v1 = good.split(",v1=").nth(1).unwrap();
        let header = format!(
            "t={NOW},v1={},v1={good_v1},v0={}",
            "00".repeat(32),
            "ff".repeat(32)
        );
        assert_eq!(check(&verifier("whsec_a"), &header, BODY), Ok(()));
    }

    #[test]
    fn accepts_each_configured_secret() {
        let v = verifier(" whsec_old , whsec_new,whsec_connect ");
        for s in ["whsec_old", "whsec_new", "whsec_connect"] {
            assert_eq!(check(&v, &sign(&secret(s), NOW, BODY), BODY), Ok(()), "{s}");
        }
        let other = sign(&secret("whsec_other"), NOW, BODY);
        assert_eq!(check(&v, &other, BODY), Err(SignatureError::Mismatch));
    }

    #[test]
    fn refuses_stale_and_future_timestamps() {
        let v = verifier("whsec_a");
        let stale = sign(&secret("whsec_a"), NOW - 301, BODY);
        assert_eq!(
            check(&v, &stale, BODY),
            Err(SignatureError::OutsideTolerance {
                age_secs: 301,
                tolerance_secs: 300
            })
        );
        let edge = sign(&secret("whsec_a"), NOW - 300, BODY);
        assert_eq!(check(&v, &edge, BODY), Ok(()));
        let future = sign(&secret("whsec_a"), NOW + 301, BODY);
        assert!(matches!(
            check(&v, &future, BODY),
            Err(SignatureError::OutsideTolerance { .. })
        ));
        let lenient = Verifier::new(WebhookSecrets::parse("whsec_a").unwrap(), 3600);
        assert_eq!(check(&lenient, &stale, BODY), Ok(()));
    }

    #[test]
    fn refuses_a_tampered_body_or_timestamp() {
        let v = verifier("whsec_a");
        let header = sign(&secret("whsec_a"), NOW, BODY);
        assert_eq!(
            check(&v, &header, br#"{"id":"evt_2","object":"event"}"#),
            Err(SignatureError::Mismatch)
        );
        let moved = header.replace(&format!("t={NOW}"), &format!("t={}", NOW - 1));
        assert_eq!(check(&v, &moved, BODY), Err(SignatureError::Mismatch));
    }

    #[test]
    fn v0_alone_is_not_enough() {
        let v1 = sign(&secret("whsec_a"), NOW, BODY);
        let as_v0 = v1.replace("v1=", "v0=");
        assert_eq!(
            check(&verifier("whsec_a"), &as_v0, BODY),
            Err(SignatureError::NoV1Signature)
        );
    }

    #[test]
    fn malformed_headers_are_reported() {
        let v = verifier("whsec_a");
        let only_v1 = format!("v1={}", "ab".repeat(32));
        let cases: &[(&[u8], SignatureError)] = &[
            (b"", SignatureError::MalformedHeader("no t= timestamp")),
            (
                b"garbage",
                SignatureError::MalformedHeader("no t= timestamp"),
            ),
            (
                only_v1.as_bytes(),
                SignatureError::MalformedHeader("no t= timestamp"),
            ),
            (
                b"t=abc,v1=00",
                SignatureError::MalformedHeader("t is not a unix timestamp"),
            ),
            (b"t=1700000000", SignatureError::NoV1Signature),
            (b"t=1700000000,v1=nothex", SignatureError::Mismatch),
            (b"t=1700000000,v1=abcd", SignatureError::Mismatch),
            (
                b"\xff\xfe",
                SignatureError::MalformedHeader("not valid UTF-8"),
            ),
        ];
        for (header, expected) in cases {
            assert_eq!(
                v.verify(Some(header), BODY, NOW).as_ref(),
                Err(expected),
                "{:?}",
                String::from_utf8_lossy(header)
            );
        }
        assert_eq!(
            v.verify(None, BODY, NOW),
            Err(SignatureError::MissingHeader)
        );
    }

    #[test]
    fn secrets_list_must_hold_whsec_values() {
        assert!(WebhookSecrets::parse("").is_err());
        assert!(WebhookSecrets::parse(" , ").is_err());
        assert!(WebhookSecrets::parse("sk_test_123").is_err());
        assert!(WebhookSecrets::parse("whsec_a,sk_live_b").is_err());
    }

    mod never_panics {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn on_any_header_or_body(header in proptest::collection::vec(any::<u8>(), 0..256), body in proptest::collection::vec(any::<u8>(), 0..512), now in any::<i64>()) {
                let _ = verifier("whsec_a,whsec_b").verify(Some(&header), &body, now);
            }

            #[test]
            fn on_header_shaped_strings(header in "(t=-?[0-9]{0,20}|v1=[0-9a-f]{0,70}|v0=[a-z0-9]*|[a-z0-9=]*)(,(t=-?[0-9]{0,20}|v1=[0-9a-f]{0,70}|[a-z0-9=]*)){0,5}", now in any::<i64>()) {
                let _ = verifier("whsec_a").verify(Some(header.as_bytes()), BODY, now);
            }
        }
    }
}
