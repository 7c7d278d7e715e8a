//! Unsubscribe links: `GET /recovery/unsubscribe?token=…` (and RFC 8058 one-click `POST`).
//! The token names the hashed address and is signed with HMAC-SHA256, so nobody can opt
//! somebody else out, and the address itself never appears in a URL.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::config::Secret;

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
pub fn token(key: &Secret, address_hash: &str) -> String {
    format!(
        "{address_hash}.{}",
        hex::encode(mac(key, address_hash).finalize().into_bytes())
    )
}

/// The address hash a token stands for, if its signature holds (constant-time comparison).
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
