//! The shapes of Stripe's answers the bundle reads, at the pinned API version. Only the fields
//! used are typed; Stripe adds fields freely, so unknown ones are ignored.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::{CustomerId, PaymentIntentId, PriceId, SessionId};
use crate::money::Currency;

pub use super::session_details::*;

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
    /// Checkout Sessions with Elements: the merchant's own page renders the payment form.
    Custom,
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
    #[serde(default)]
    pub phone: Option<String>,
    /// The billing address, when the session collected one.
    #[serde(default)]
    pub address: Option<Address>,
    #[serde(default)]
    pub tax_ids: Option<Vec<TaxId>>,
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
    #[serde(default)]
    pub terms_of_service: Option<TermsConsent>,
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
    /// Where the goods go, at the pinned version.
    #[serde(default)]
    pub collected_information: Option<CollectedInformation>,
    /// Where the goods went before basil (webhooks of an older endpoint version).
    #[serde(default)]
    pub shipping_details: Option<ShippingDetails>,
    #[serde(default)]
    pub shipping_cost: Option<ShippingCost>,
    #[serde(default)]
    pub total_details: Option<TotalDetails>,
    #[serde(default)]
    pub custom_fields: Vec<CustomField>,
}

impl CheckoutSession {
    /// The shipping details, wherever this version of the object keeps them.
    #[must_use]
    pub fn shipping(&self) -> Option<&ShippingDetails> {
        self.collected_information
            .as_ref()
            .and_then(|c| c.shipping_details.as_ref())
            .or(self.shipping_details.as_ref())
    }
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
    #[serde(default)]
    pub active: Option<bool>,
}

impl Price {
    /// A recurring price bills a subscription; only a one-time price is paid by a PaymentIntent.
    #[must_use]
    pub fn is_recurring(&self) -> bool {
        self.kind.as_deref() == Some("recurring")
    }

    /// The product's id, whether or not it was expanded.
    #[must_use]
    pub fn product_id(&self) -> Option<&str> {
        let product = self.product.as_ref()?;
        product
            .as_str()
            .or_else(|| product.get("id").and_then(serde_json::Value::as_str))
    }

    /// The product's name, when the product was expanded.
    #[must_use]
    pub fn product_name(&self) -> Option<&str> {
        self.product
            .as_ref()?
            .get("name")
            .and_then(serde_json::Value::as_str)
    }
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
    #[serde(default)]
    pub amount_tax: i64,
    #[serde(default)]
    pub amount_discount: i64,
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

/// The metadata that marks a PaymentIntent made outside Checkout (`POST /payments`, or the
/// merchant's own Payment Element flow) as an order of its own:
/// `metadata[checkout_lambda_fulfil]=true`. Without it a PaymentIntent is never fulfilled on
/// its own: a Checkout Session's is fulfilled through its session, an invoice's (a
/// subscription's first payment, each renewal) through the subscription.
pub const FULFIL_METADATA_KEY: &str = "checkout_lambda_fulfil";
/// The lines a marked PaymentIntent pays for, `price:product:quantity:unit_amount`
/// comma-separated (when they fit Stripe's 500 characters).
pub const LINES_METADATA_KEY: &str = "checkout_lambda_lines";
/// Metadata keys starting so are the bundle's.
pub const RESERVED_METADATA_PREFIX: &str = "checkout_lambda";

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
    /// For the browser's `stripe.confirmPayment`; never logged nor stored.
    #[serde(default)]
    pub client_secret: Option<String>,
    /// The latest payment attempt's charge (an id, or the charge when expanded).
    #[serde(default)]
    pub latest_charge: Option<serde_json::Value>,
}

impl PaymentIntent {
    /// Marked for fulfilment as an order of its own ([`FULFIL_METADATA_KEY`]).
    #[must_use]
    pub fn is_standalone(&self) -> bool {
        self.metadata
            .get(FULFIL_METADATA_KEY)
            .is_some_and(|v| v == "true")
    }

    /// One payment attempt's identity: its charge, so each retry is an attempt of its own.
    #[must_use]
    pub fn attempt(&self) -> Option<&str> {
        let charge = self.latest_charge.as_ref()?;
        charge
            .as_str()
            .or_else(|| charge.get("id").and_then(serde_json::Value::as_str))
    }
}

/// A CustomerSession: lets the Payment Element show and manage a customer's saved payment
/// methods, for the client secret's short life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerSession {
    pub client_secret: String,
    #[serde(default)]
    pub customer: Option<String>,
    #[serde(default)]
    pub expires_at: Option<i64>,
}
