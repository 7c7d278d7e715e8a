//! What a completed Checkout Session collected beyond the payment: where the goods go
//! (`collected_information.shipping_details` at the pinned version; `shipping_details` before
//! basil), the shipping rate chosen, tax and discounts (`total_details`, its `breakdown` when
//! expanded), custom fields, tax ids, and the terms-of-service consent. Every field is
//! optional: a session collects only what its shop policy asked for.

use serde::{Deserialize, Serialize};

use crate::money::Currency;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    #[serde(default)]
    pub line1: Option<String>,
    #[serde(default)]
    pub line2: Option<String>,
    #[serde(default)]
    pub postal_code: Option<String>,
    #[serde(default)]
    pub city: Option<String>,
    #[serde(default)]
    pub state: Option<String>,
    /// ISO 3166-1 alpha-2.
    #[serde(default)]
    pub country: Option<String>,
}

impl Address {
    /// The address's lines, empty parts left out: `line1`, `line2`, `postal_code city`,
    /// `state`, `country`.
    #[must_use]
    pub fn lines(&self) -> Vec<String> {
        let town = [self.postal_code.as_deref(), self.city.as_deref()]
            .into_iter()
            .flatten()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        [
            self.line1.clone(),
            self.line2.clone(),
            Some(town),
            self.state.clone(),
            self.country.clone(),
        ]
        .into_iter()
        .flatten()
        .filter(|s| !s.trim().is_empty())
        .collect()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShippingDetails {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub address: Option<Address>,
}

/// `collected_information`: where the pinned version keeps the shipping details.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectedInformation {
    #[serde(default)]
    pub shipping_details: Option<ShippingDetails>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FixedAmount {
    pub amount: i64,
    pub currency: Currency,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShippingRate {
    pub id: String,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub fixed_amount: Option<FixedAmount>,
}

/// An expandable field: the id, or the object with `expand[]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ShippingRateRef {
    Id(String),
    Object(ShippingRate),
}

impl ShippingRateRef {
    #[must_use]
    pub fn id(&self) -> &str {
        match self {
            Self::Id(id) => id,
            Self::Object(rate) => &rate.id,
        }
    }

    #[must_use]
    pub fn display_name(&self) -> Option<&str> {
        match self {
            Self::Id(_) => None,
            Self::Object(rate) => rate.display_name.as_deref(),
        }
    }
}

/// `shipping_cost`: the rate the customer chose and what it cost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShippingCost {
    #[serde(default)]
    pub amount_subtotal: i64,
    #[serde(default)]
    pub amount_tax: i64,
    #[serde(default)]
    pub amount_total: i64,
    #[serde(default)]
    pub shipping_rate: Option<ShippingRateRef>,
}

/// `total_details`; `breakdown` only with `expand[]=total_details.breakdown`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TotalDetails {
    #[serde(default)]
    pub amount_discount: i64,
    #[serde(default)]
    pub amount_shipping: Option<i64>,
    #[serde(default)]
    pub amount_tax: i64,
    #[serde(default)]
    pub breakdown: Option<Breakdown>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Breakdown {
    #[serde(default)]
    pub discounts: Vec<DiscountAmount>,
    #[serde(default)]
    pub taxes: Vec<TaxAmount>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiscountAmount {
    pub amount: i64,
    /// A discount object: `coupon` (an object with `id`, `name`) and `promotion_code` (an id).
    #[serde(default)]
    pub discount: serde_json::Value,
}

impl DiscountAmount {
    /// The coupon's name, else its id, else the promotion code's id.
    #[must_use]
    pub fn label(&self) -> String {
        let coupon = &self.discount["coupon"];
        coupon["name"]
            .as_str()
            .or_else(|| coupon["id"].as_str())
            .or_else(|| coupon.as_str())
            .or_else(|| self.discount["promotion_code"].as_str())
            .unwrap_or("discount")
            .to_string()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaxAmount {
    pub amount: i64,
    /// The tax rate object: `display_name`, `percentage`, `jurisdiction`, `id`.
    #[serde(default)]
    pub rate: serde_json::Value,
    #[serde(default)]
    pub taxable_amount: Option<i64>,
}

impl TaxAmount {
    /// `VAT 20%`, `Sales tax 8.875%`: the rate's name and percentage, as a receipt shows it.
    #[must_use]
    pub fn label(&self) -> String {
        let name = self.rate["display_name"].as_str().unwrap_or("Tax");
        match self.rate["percentage"].as_f64() {
            Some(p) => format!("{name} {p}%"),
            None => name.to_string(),
        }
    }
}

/// A tax id the customer gave (`customer_details.tax_ids`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaxId {
    #[serde(rename = "type")]
    pub kind: String,
    pub value: String,
}

/// One of the session's `custom_fields`, with the customer's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomField {
    pub key: String,
    #[serde(default)]
    pub label: CustomFieldLabel,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub optional: bool,
    #[serde(default)]
    pub text: Option<FieldValue>,
    #[serde(default)]
    pub numeric: Option<FieldValue>,
    #[serde(default)]
    pub dropdown: Option<FieldValue>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomFieldLabel {
    #[serde(default)]
    pub custom: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FieldValue {
    #[serde(default)]
    pub value: Option<String>,
}

impl CustomField {
    /// The customer's answer, whatever the field's type.
    #[must_use]
    pub fn value(&self) -> Option<&str> {
        [&self.text, &self.numeric, &self.dropdown]
            .into_iter()
            .flatten()
            .find_map(|v| v.value.as_deref())
    }
}

/// `consent.terms_of_service`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TermsConsent {
    Accepted,
    #[serde(other)]
    Other,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stripe::CheckoutSession;

    fn fixture(set: &str, name: &str) -> serde_json::Value {
        let path = format!(
            "{}/tests/fixtures/stripe/{set}/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let raw = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        serde_json::from_str(&raw).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// Both sets (webhooks arrive in the endpoint's version, not the pinned one) parse; the
    /// fixtures' ids are already valid, so no placeholder needs replacing.
    #[test]
    fn both_fixture_sets_parse() {
        for set in ["basil", "latest"] {
            let session: CheckoutSession = serde_json::from_value(fixture(set, "checkout_session"))
                .unwrap_or_else(|e| panic!("{set} checkout_session: {e}"));
            assert!(session.id.as_str().starts_with("cs_test_"), "{set}");
            let rate: ShippingRate = serde_json::from_value(fixture(set, "shipping_rate"))
                .unwrap_or_else(|e| panic!("{set} shipping_rate: {e}"));
            assert_eq!(rate.fixed_amount.map(|f| f.amount), Some(500), "{set}");
        }
        let latest: CheckoutSession =
            serde_json::from_value(fixture("latest", "checkout_session")).unwrap();
        assert_eq!(
            latest.shipping().and_then(|s| s.name.as_deref()),
            Some("name"),
            "collected_information.shipping_details, where basil and later keep it"
        );
    }
}
