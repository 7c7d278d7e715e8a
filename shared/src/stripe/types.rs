//! The shapes of Stripe's answers the bundle reads, at the pinned API version. Only the fields
//! used are typed; Stripe adds fields freely, so unknown ones are ignored.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::{CustomerId, PaymentIntentId, PriceId, SessionId};
use crate::money::Currency;

/// One `line_items[]` entry of a session to create: a Price ID and a quantity. Amounts are
/// never part of it: Stripe reads them from the price.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineItemRequest {
    pub price: PriceId,
    pub quantity: u32,
}

/// A page of a Stripe list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct List<T> {
    pub data: Vec<T>,
    pub has_more: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Payment,
    Subscription,
    Setup,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UiMode {
    Hosted,
    Embedded,
    #[serde(other)]
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionStatus {
    Open,
    Complete,
    Expired,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    Paid,
    Unpaid,
    NoPaymentRequired,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CustomerDetails {
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PromotionsConsent {
    OptIn,
    OptOut,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Consent {
    #[serde(default)]
    pub promotions: Option<PromotionsConsent>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Recovery {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub expires_at: Option<i64>,
    #[serde(default)]
    pub allow_promotion_codes: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AfterExpiration {
    #[serde(default)]
    pub recovery: Option<Recovery>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckoutSession {
    pub id: SessionId,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub client_secret: Option<String>,
    pub expires_at: i64,
    #[serde(default)]
    pub created: Option<i64>,
    pub mode: Mode,
    #[serde(default)]
    pub ui_mode: Option<UiMode>,
    #[serde(default)]
    pub status: Option<SessionStatus>,
    pub payment_status: PaymentStatus,
    #[serde(default)]
    pub customer: Option<CustomerId>,
    #[serde(default)]
    pub customer_email: Option<String>,
    #[serde(default)]
    pub customer_details: Option<CustomerDetails>,
    #[serde(default)]
    pub amount_subtotal: Option<i64>,
    #[serde(default)]
    pub amount_total: Option<i64>,
    #[serde(default)]
    pub currency: Option<Currency>,
    #[serde(default)]
    pub locale: Option<String>,
    #[serde(default)]
    pub payment_intent: Option<PaymentIntentId>,
    #[serde(default)]
    pub subscription: Option<String>,
    /// The merchant's own reference (its user or cart id), as create-session passed it.
    #[serde(default)]
    pub client_reference_id: Option<String>,
    #[serde(default)]
    pub consent: Option<Consent>,
    #[serde(default)]
    pub after_expiration: Option<AfterExpiration>,
    #[serde(default)]
    pub recovered_from: Option<SessionId>,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// Present when retrieved with `expand[]=line_items`: the first page only.
    #[serde(default)]
    pub line_items: Option<List<LineItem>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Price {
    pub id: PriceId,
    /// A product id, or the product object when expanded.
    #[serde(default)]
    pub product: Option<serde_json::Value>,
    #[serde(default)]
    pub unit_amount: Option<i64>,
    pub currency: Currency,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LineItem {
    pub id: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub quantity: Option<u64>,
    pub amount_subtotal: i64,
    pub amount_total: i64,
    pub currency: Currency,
    #[serde(default)]
    pub price: Option<Price>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromotionCode {
    pub id: String,
    pub code: String,
    #[serde(default)]
    pub expires_at: Option<i64>,
}

/// A PaymentIntent, as in `payment_intent.*` events (Payment Element flows).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentIntent {
    pub id: PaymentIntentId,
    pub amount: i64,
    #[serde(default)]
    pub amount_received: i64,
    pub currency: Currency,
    pub status: String,
    #[serde(default)]
    pub customer: Option<CustomerId>,
    #[serde(default)]
    pub receipt_email: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}
