//! `Idempotency-Key`s: one per logical POST, kept across the client's retries, so Stripe
//! performs the request once however often it is sent.

/// An `Idempotency-Key`: the same key for every attempt of one logical request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// A fresh random key, for requests the caller gave no key for.
    #[must_use]
    pub fn generate(namespace: &str) -> Self {
        let mut bytes = [0u8; 16];
        getrandom::getrandom(&mut bytes).expect("the OS random source is available");
        Self(format!("{namespace}:{}", hex::encode(bytes)))
    }

    /// A key derived from the caller's, namespaced so it cannot collide with keys the bundle
    /// makes for other requests. Stripe accepts up to 255 characters.
    ///
    /// # Errors
    /// The key is empty, longer than 200 characters or not visible ASCII.
    pub fn from_caller(namespace: &str, caller_key: &str) -> Result<Self, String> {
        let ok = (1..=200).contains(&caller_key.len())
            && caller_key.bytes().all(|b| b.is_ascii_graphic());
        if ok {
            Ok(Self(format!("{namespace}:caller:{caller_key}")))
        } else {
            Err("Idempotency-Key must be 1 to 200 visible ASCII characters".into())
        }
    }

    /// A key derived from a stable name (an order, an email), so a retried job reuses it.
    #[must_use]
    pub fn derived(namespace: &str, name: &str) -> Self {
        Self(format!("{namespace}:{name}"))
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_keys_are_namespaced_and_checked() {
        let a = IdempotencyKey::generate("checkout");
        assert!(a.as_str().starts_with("checkout:") && a != IdempotencyKey::generate("checkout"));
        assert_eq!(
            IdempotencyKey::from_caller("checkout", "abc-123")
                .unwrap()
                .as_str(),
            "checkout:caller:abc-123"
        );
        assert!(IdempotencyKey::from_caller("checkout", "").is_err());
        assert!(IdempotencyKey::from_caller("checkout", "has space").is_err());
        assert!(IdempotencyKey::from_caller("checkout", &"x".repeat(201)).is_err());
    }
}
