//! Stripe events as the webhook receives them: parsed, not validated, into types that cannot
//! hold a malformed id, and that keep `data.object` as the exact JSON Stripe sent.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::ids::{AccountId, EventId};

#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("the body is not a Stripe event: {0}")]
    Malformed(#[from] serde_json::Error),
    /// A field the stored record keeps (and indexes) is longer than any Stripe sends: no
    /// delivery of it could ever be stored, so it is refused rather than retried for days.
    #[error("the event's {field} is {len} bytes, over the {max} a Stripe event has")]
    Oversized {
        field: &'static str,
        len: usize,
        max: usize,
    },
    /// `data.object.id` is the key of the events table's by-object index, and DynamoDB
    /// refuses an empty key: such an event could never be stored, so it is refused (400)
    /// rather than answered 503 and retried by Stripe for days.
    #[error("the event's data.object.id is empty")]
    EmptyObjectId,
}

/// Longest `type`, `api_version` and object `id`/`object` a Stripe event carries, with room
/// to spare; the object id is a key of the events table's by-object index (2 KB at most).
const MAX_TYPE_BYTES: usize = 128;
const MAX_API_VERSION_BYTES: usize = 64;
const MAX_OBJECT_ID_BYTES: usize = 255;
const MAX_OBJECT_KIND_BYTES: usize = 128;

/// The event types the bundle acts on; every other type is still stored and acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum EventType {
    CheckoutSessionCompleted,
    CheckoutSessionAsyncPaymentSucceeded,
    CheckoutSessionAsyncPaymentFailed,
    CheckoutSessionExpired,
    PaymentIntentSucceeded,
    PaymentIntentProcessing,
    PaymentIntentPaymentFailed,
    SubscriptionCreated,
    SubscriptionUpdated,
    SubscriptionDeleted,
    SubscriptionPaused,
    SubscriptionResumed,
    InvoicePaid,
    InvoicePaymentFailed,
    InvoicePaymentActionRequired,
    ChargeRefunded,
    ChargeDisputeCreated,
    ChargeDisputeClosed,
    Other(String),
}

impl EventType {
    const KNOWN: [(EventType, &'static str); 18] = [
        (Self::CheckoutSessionCompleted, "checkout.session.completed"),
        (
            Self::CheckoutSessionAsyncPaymentSucceeded,
            "checkout.session.async_payment_succeeded",
        ),
        (
            Self::CheckoutSessionAsyncPaymentFailed,
            "checkout.session.async_payment_failed",
        ),
        (Self::CheckoutSessionExpired, "checkout.session.expired"),
        (Self::PaymentIntentSucceeded, "payment_intent.succeeded"),
        (Self::PaymentIntentProcessing, "payment_intent.processing"),
        (
            Self::PaymentIntentPaymentFailed,
            "payment_intent.payment_failed",
        ),
        (Self::SubscriptionCreated, "customer.subscription.created"),
        (Self::SubscriptionUpdated, "customer.subscription.updated"),
        (Self::SubscriptionDeleted, "customer.subscription.deleted"),
        (Self::SubscriptionPaused, "customer.subscription.paused"),
        (Self::SubscriptionResumed, "customer.subscription.resumed"),
        (Self::InvoicePaid, "invoice.paid"),
        (Self::InvoicePaymentFailed, "invoice.payment_failed"),
        (
            Self::InvoicePaymentActionRequired,
            "invoice.payment_action_required",
        ),
        (Self::ChargeRefunded, "charge.refunded"),
        (Self::ChargeDisputeCreated, "charge.dispute.created"),
        (Self::ChargeDisputeClosed, "charge.dispute.closed"),
    ];

    #[must_use]
    pub fn as_str(&self) -> &str {
        match self {
            Self::Other(other) => other,
            known => Self::KNOWN
                .iter()
                .find(|(kind, _)| kind == known)
                .map(|(_, name)| *name)
                .expect("every named variant is in KNOWN"),
        }
    }
}

impl From<String> for EventType {
    fn from(name: String) -> Self {
        Self::KNOWN
            .iter()
            .find(|(_, known)| *known == name)
            .map(|(kind, _)| kind.clone())
            .unwrap_or(Self::Other(name))
    }
}

impl From<EventType> for String {
    fn from(kind: EventType) -> String {
        kind.as_str().to_string()
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A Stripe event (API resource `event`), with `data.object` kept as raw JSON.
#[derive(Debug, Deserialize)]
pub struct Event {
    pub id: EventId,
    #[serde(rename = "type")]
    pub kind: EventType,
    pub created: i64,
    pub livemode: bool,
    #[serde(default)]
    pub api_version: Option<String>,
    #[serde(default)]
    pub account: Option<AccountId>,
    pub data: EventData,
}

#[derive(Debug, Deserialize)]
pub struct EventData {
    pub object: Box<RawValue>,
}

/// What the stored record needs to know of `data.object` without typing all of it.
#[derive(Debug, Default, Deserialize)]
pub struct ObjectRef {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default, rename = "object")]
    pub kind: Option<String>,
}

impl Event {
    /// # Errors
    /// The body is not JSON of a Stripe event, or an id is malformed.
    pub fn parse(body: &[u8]) -> Result<Self, EventError> {
        let event: Self = serde_json::from_slice(body)?;
        let object = event.object_ref().unwrap_or_default();
        for (field, len, max) in [
            ("type", event.kind.as_str().len(), MAX_TYPE_BYTES),
            (
                "api_version",
                event.api_version.as_ref().map_or(0, String::len),
                MAX_API_VERSION_BYTES,
            ),
            (
                "data.object.id",
                object.id.as_ref().map_or(0, String::len),
                MAX_OBJECT_ID_BYTES,
            ),
            (
                "data.object.object",
                object.kind.as_ref().map_or(0, String::len),
                MAX_OBJECT_KIND_BYTES,
            ),
        ] {
            if len > max {
                return Err(EventError::Oversized { field, len, max });
            }
        }
        if object.id.as_deref() == Some("") {
            return Err(EventError::EmptyObjectId);
        }
        Ok(event)
    }

    /// The id and type of `data.object`. Some objects (a `balance`) have no id.
    ///
    /// # Errors
    /// `data.object` is not a JSON object.
    pub fn object_ref(&self) -> Result<ObjectRef, EventError> {
        Ok(serde_json::from_str(self.data.object.get())?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMPLETED: &str = r#"{
      "id": "evt_1NG8Du2eZvKYlo2CUI79vXWy", "object": "event", "api_version": "2025-03-31.basil",
      "created": 1686089970, "livemode": false, "pending_webhooks": 1,
      "request": {"id": null, "idempotency_key": null},
      "type": "checkout.session.completed",
      "data": {"object": {"id": "cs_test_a1", "object": "checkout.session", "payment_status": "paid", "amount_total": 2000}}
    }"#;

    #[test]
    fn parses_a_checkout_event() {
        let event = Event::parse(COMPLETED.as_bytes()).unwrap();
        assert_eq!(event.id.as_str(), "evt_1NG8Du2eZvKYlo2CUI79vXWy");
        assert_eq!(event.kind, EventType::CheckoutSessionCompleted);
        assert_eq!(event.created, 1686089970);
        assert!(!event.livemode);
        assert_eq!(event.api_version.as_deref(), Some("2025-03-31.basil"));
        assert_eq!(event.account, None);
        let object = event.object_ref().unwrap();
        assert_eq!(object.id.as_deref(), Some("cs_test_a1"));
        assert_eq!(object.kind.as_deref(), Some("checkout.session"));
        assert!(
            event.data.object.get().contains(r#""amount_total": 2000"#),
            "raw JSON is kept verbatim"
        );
    }

    #[test]
    fn keeps_connect_account_and_unknown_types() {
        let body = COMPLETED
            .replace("checkout.session.completed", "customer.tax_id.created")
            .replace(
                r#""livemode": false"#,
                r#""livemode": true, "account": "acct_1Abc""#,
            );
        let event = Event::parse(body.as_bytes()).unwrap();
        assert_eq!(
            event.kind,
            EventType::Other("customer.tax_id.created".into())
        );
        assert_eq!(event.kind.as_str(), "customer.tax_id.created");
        assert_eq!(event.account.unwrap().as_str(), "acct_1Abc");
    }

    #[test]
    fn every_known_type_round_trips() {
        for (kind, name) in EventType::KNOWN {
            assert_eq!(EventType::from(name.to_string()), kind);
            assert_eq!(kind.as_str(), name);
        }
    }

    #[test]
    fn refuses_bodies_that_are_not_events() {
        let cases = [
            ("", "EOF"),
            ("not json", "expected"),
            ("[]", "expected struct Event"),
            (
                r#"{"type":"x","created":1,"livemode":false,"data":{"object":{}}}"#,
                "missing field `id`",
            ),
            (
                &COMPLETED.replace(r#""type": "checkout.session.completed","#, ""),
                "missing field `type`",
            ),
            (
                &COMPLETED.replace(r#""created": 1686089970,"#, ""),
                "missing field `created`",
            ),
            (
                &COMPLETED.replace(r#""data""#, r#""nodata""#),
                "missing field `data`",
            ),
            (
                &COMPLETED.replace("evt_1NG8Du2eZvKYlo2CUI79vXWy", "ch_123"),
                "invalid EventId",
            ),
            (
                &COMPLETED.replace("evt_1NG8Du2eZvKYlo2CUI79vXWy", "evt_'; drop"),
                "invalid EventId",
            ),
            (
                &COMPLETED.replace(
                    r#""livemode": false"#,
                    r#""livemode": false, "account": "cus_1""#,
                ),
                "invalid AccountId",
            ),
            (
                &COMPLETED.replace("1686089970", "\"yesterday\""),
                "invalid type",
            ),
            (
                &COMPLETED.replace(r#""id": "cs_test_a1""#, r#""id": """#),
                "data.object.id is empty",
            ),
        ];
        for (body, expected) in cases {
            let err = Event::parse(body.as_bytes()).unwrap_err().to_string();
            assert!(err.contains(expected), "{body:?}: {err}");
        }
    }

    mod never_panics {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn on_any_bytes(body in proptest::collection::vec(any::<u8>(), 0..1024)) {
                if let Ok(event) = Event::parse(&body) {
                    let _ = event.object_ref();
                }
            }

            #[test]
            fn on_event_shaped_json(id in "[a-z_]{0,8}[A-Za-z0-9_';]{0,12}", kind in ".{0,40}", created in any::<i64>(), account in proptest::option::of("[a-z_]{0,8}[A-Za-z0-9]{0,6}"), object in "\\{(\"id\":\"[a-z_0-9]{0,10}\")?\\}|null|[1-9][0-9]{0,4}|\"x\"") {
                let body = serde_json::json!({"id": id, "type": kind, "created": created, "livemode": false, "account": account, "data": {"object": serde_json::from_str::<serde_json::Value>(&object).unwrap()}});
                if let Ok(event) = Event::parse(body.to_string().as_bytes()) {
                    prop_assert!(event.id.as_str().starts_with("evt_"));
                    let _ = event.object_ref();
                }
            }
        }
    }
}
