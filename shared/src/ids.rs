//! Stripe object ids as newtypes: each can only hold an id of its own kind, so a price id can
//! never be passed where a session id is expected, and a malformed id is refused at the edge.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Builds a newtype over `String` for a Stripe id with a known prefix. Stripe ids are ASCII
/// letters, digits and `_`; the length cap keeps them within a DynamoDB key's limits.
macro_rules! stripe_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidId;

            fn try_from(value: String) -> Result<Self, Self::Error> {
                let rest_ok = value.len() <= 255
                    && value.len() > $prefix.len()
                    && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
                if value.starts_with($prefix) && rest_ok {
                    Ok(Self(value))
                } else {
                    Err(InvalidId { kind: stringify!($name), prefix: $prefix })
                }
            }
        }

        impl std::str::FromStr for $name {
            type Err = InvalidId;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::try_from(s.to_string())
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

/// An id that is not of the expected shape. The value is left out on purpose: ids arrive
/// from callers, and errors end up in logs and responses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind}: expected {prefix} followed by letters, digits or _")]
pub struct InvalidId {
    kind: &'static str,
    prefix: &'static str,
}

stripe_id!(
    /// `evt_…`: the key that makes storing an event idempotent.
    EventId,
    "evt_"
);
stripe_id!(
    /// `acct_…`: a Connect account, present on events from connected accounts.
    AccountId,
    "acct_"
);
stripe_id!(
    /// `cs_…`: a Checkout Session (`cs_test_…`, `cs_live_…`).
    SessionId,
    "cs_"
);
stripe_id!(
    /// `price_…`: the only way a client names what it buys; amounts come from Stripe.
    PriceId,
    "price_"
);
stripe_id!(
    /// `cus_…`: an existing Stripe customer.
    CustomerId,
    "cus_"
);
stripe_id!(
    /// `pi_…`: a PaymentIntent.
    PaymentIntentId,
    "pi_"
);
stripe_id!(
    /// `sub_…`: a subscription, the key of the subscriptions table.
    SubscriptionId,
    "sub_"
);
stripe_id!(
    /// `in_…`: an invoice (a subscription's first payment and each renewal).
    InvoiceId,
    "in_"
);

stripe_id!(
    /// `shr_…`: a shipping rate the shop policy offers.
    ShippingRateId,
    "shr_"
);
