//! The Checkout options every session of a shop gets, set by the merchant and never by a
//! browser, in Stripe's own parameter shapes (the API reference of `POST
//! /v1/checkout/sessions` documents each one). Each option is typed and checked against
//! Stripe's limits when the policy is read, so a mistake stops the cold start with the key
//! named instead of failing every customer's checkout at Stripe.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::ids::{PriceId, ShippingRateId};
use crate::stripe::Form;

/// Every option's name, the keys of `checkout`: a browser request naming one is told the
/// shop policy sets it.
pub const OPTION_KEYS: &[&str] = &[
    "shipping_address_collection",
    "shipping_options",
    "phone_number_collection",
    "billing_address_collection",
    "tax_id_collection",
    "automatic_tax",
    "custom_text",
    "custom_fields",
    "consent_collection",
    "invoice_creation",
    "submit_type",
    "saved_payment_method_options",
    "payment_intent_data",
    "adjustable_quantity",
    "optional_items",
];

/// The options, as `checkout` in the shop document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckoutPolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipping_address_collection: Option<ShippingAddressCollection>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shipping_options: Vec<ShippingOption>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number_collection: Option<Enabled>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billing_address_collection: Option<BillingAddressCollection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tax_id_collection: Option<Enabled>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub automatic_tax: Option<Enabled>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_text: Option<CustomText>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub custom_fields: Vec<CustomFieldSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent_collection: Option<ConsentCollection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoice_creation: Option<Enabled>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submit_type: Option<SubmitType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saved_payment_method_options: Option<SavedPaymentMethodOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_intent_data: Option<PaymentIntentData>,
    /// Per price: `line_items[N][adjustable_quantity]` for every line of that price.
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    pub adjustable_quantity: HashMap<PriceId, AdjustableQuantity>,
    /// Items the customer may add on Stripe's page.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub optional_items: Vec<OptionalItem>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShippingAddressCollection {
    pub allowed_countries: Vec<CountryCode>,
}

/// ISO 3166-1 alpha-2, as Stripe's `allowed_countries` takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CountryCode(String);

impl TryFrom<String> for CountryCode {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        if value.len() == 2 && value.bytes().all(|b| b.is_ascii_uppercase()) {
            Ok(Self(value))
        } else {
            Err(format!(
                "{value:?} is not a two-letter country code in capitals (FR, DE, US)"
            ))
        }
    }
}

impl From<CountryCode> for String {
    fn from(code: CountryCode) -> Self {
        code.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShippingOption {
    pub shipping_rate: ShippingRateId,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Enabled {
    pub enabled: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BillingAddressCollection {
    Auto,
    Required,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubmitType {
    Auto,
    Pay,
    Book,
    Donate,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomText {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submit: Option<Message>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipping_address: Option<Message>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terms_of_service_acceptance: Option<Message>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_submit: Option<Message>,
}

/// Stripe's custom texts: up to 1200 characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Message {
    pub message: Bounded<1, 1200>,
}

/// A string of `MIN` to `MAX` characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Bounded<const MIN: usize, const MAX: usize>(String);

impl<const MIN: usize, const MAX: usize> TryFrom<String> for Bounded<MIN, MAX> {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        let len = value.chars().count();
        if !(MIN..=MAX).contains(&len) {
            return Err(format!("{MIN} to {MAX} characters"));
        }
        if value.chars().any(|c| c.is_control() && c != '\n') {
            return Err("no control characters".into());
        }
        Ok(Self(value))
    }
}

impl<const MIN: usize, const MAX: usize> From<Bounded<MIN, MAX>> for String {
    fn from(value: Bounded<MIN, MAX>) -> Self {
        value.0
    }
}

impl<const MIN: usize, const MAX: usize> Bounded<MIN, MAX> {
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Stripe's keys and dropdown values: letters and digits only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct FieldKey(String);

impl TryFrom<String> for FieldKey {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        if (1..=200).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_alphanumeric()) {
            Ok(Self(value))
        } else {
            Err(format!(
                "{value:?}: 1 to 200 letters and digits (Stripe allows nothing else)"
            ))
        }
    }
}

impl From<FieldKey> for String {
    fn from(key: FieldKey) -> Self {
        key.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomFieldSpec {
    pub key: FieldKey,
    pub label: FieldLabel,
    #[serde(rename = "type")]
    pub kind: FieldKind,
    #[serde(default)]
    pub optional: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<LengthLimits>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numeric: Option<LengthLimits>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropdown: Option<Dropdown>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldLabel {
    #[serde(rename = "type")]
    pub kind: LabelKind,
    pub custom: Bounded<1, 50>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LabelKind {
    Custom,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldKind {
    Text,
    Numeric,
    Dropdown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LengthLimits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_length: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maximum_length: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dropdown {
    pub options: Vec<DropdownOption>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DropdownOption {
    pub label: Bounded<1, 100>,
    pub value: FieldKey,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentCollection {
    pub terms_of_service: TermsOfService,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TermsOfService {
    Required,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedPaymentMethodOptions {
    pub payment_method_save: OnOff,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnOff {
    Enabled,
    Disabled,
}

/// Only `setup_future_usage`: the application fee of a Connect sale is the platform's, set
/// from its fee policy (`CONNECT_FEE_*`), never from a shop's document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentIntentData {
    pub setup_future_usage: FutureUsage,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FutureUsage {
    OffSession,
    OnSession,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdjustableQuantity {
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maximum: Option<u32>,
}

impl AdjustableQuantity {
    /// Stripe's defaults when a bound is left out: 0 and 99.
    #[must_use]
    pub fn range(&self) -> std::ops::RangeInclusive<u32> {
        self.minimum.unwrap_or(0)..=self.maximum.unwrap_or(99)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptionalItem {
    pub price: PriceId,
    pub quantity: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adjustable_quantity: Option<AdjustableQuantity>,
}

/// A session's mode, as far as the options care: some exist in payment mode only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKind {
    Payment,
    Subscription,
}

impl CheckoutPolicy {
    /// Stripe's limits the types alone cannot hold, each with the key named.
    ///
    /// # Errors
    /// The first option over a limit: its path and why.
    pub fn check(&self) -> Result<(), (String, String)> {
        let fail = |path: &str, why: &str| Err((path.to_string(), why.to_string()));
        if let Some(collection) = &self.shipping_address_collection
            && collection.allowed_countries.is_empty()
        {
            return fail(
                "shipping_address_collection.allowed_countries",
                "at least one country",
            );
        }
        if self.shipping_options.len() > 5 {
            return fail("shipping_options", "at most 5 shipping rates");
        }
        if !self.shipping_options.is_empty() && self.shipping_address_collection.is_none() {
            return fail(
                "shipping_options",
                "needs shipping_address_collection, so there is an address to ship to",
            );
        }
        if self.custom_fields.len() > 3 {
            return fail("custom_fields", "at most 3 fields");
        }
        for (i, field) in self.custom_fields.iter().enumerate() {
            let expected = match field.kind {
                FieldKind::Dropdown => field.dropdown.is_some(),
                _ => field.dropdown.is_none(),
            };
            if !expected {
                return fail(
                    &format!("custom_fields[{i}].dropdown"),
                    "options are required for a dropdown, and only for a dropdown",
                );
            }
            if let Some(dropdown) = &field.dropdown
                && !(1..=200).contains(&dropdown.options.len())
            {
                return fail(
                    &format!("custom_fields[{i}].dropdown.options"),
                    "1 to 200 options",
                );
            }
            for (limits, kind) in [(&field.text, "text"), (&field.numeric, "numeric")] {
                if let Some(limits) = limits
                    && (limits.minimum_length.unwrap_or(0) > limits.maximum_length.unwrap_or(255)
                        || limits.maximum_length.unwrap_or(0) > 255)
                {
                    return fail(
                        &format!("custom_fields[{i}].{kind}"),
                        "lengths from 0 to 255, minimum not over maximum",
                    );
                }
            }
        }
        if let Some(first) = self
            .custom_fields
            .iter()
            .enumerate()
            .find(|(i, f)| self.custom_fields[..*i].iter().any(|g| g.key == f.key))
        {
            return fail(
                &format!("custom_fields[{}].key", first.0),
                "keys must differ",
            );
        }
        for (price, adjustable) in &self.adjustable_quantity {
            if adjustable.range().is_empty() || *adjustable.range().end() > 999_999 {
                return fail(
                    &format!("adjustable_quantity.{price}"),
                    "minimum 0 to maximum 999999, minimum not over maximum",
                );
            }
        }
        if self.optional_items.len() > 10 {
            return fail("optional_items", "at most 10 items");
        }
        for (i, item) in self.optional_items.iter().enumerate() {
            let range = item.adjustable_quantity.map_or(1..=99, |a| a.range());
            if item.quantity == 0 || !range.contains(&item.quantity) {
                return fail(
                    &format!("optional_items[{i}].quantity"),
                    "at least 1, within its adjustable range",
                );
            }
        }
        Ok(())
    }

    /// The `adjustable_quantity` of `price`'s lines, when the shop lets customers change it.
    #[must_use]
    pub fn adjustable(&self, price: &PriceId) -> Option<&AdjustableQuantity> {
        self.adjustable_quantity.get(price).filter(|a| a.enabled)
    }

    /// The options as form fields for a session of `kind` whose cart holds `cart_prices`.
    /// Options Stripe takes in payment mode only (shipping rates, invoices, submit type,
    /// saving the payment method, `payment_intent_data`) are left out of subscription
    /// sessions, and an optional item already in the cart is not offered again.
    pub fn push_to(&self, form: &mut Form, kind: SessionKind, cart_prices: &[&PriceId]) {
        let payment = kind == SessionKind::Payment;
        let value = |v: &dyn erased::ToJson| v.to_json();
        if let Some(v) = &self.shipping_address_collection {
            form.push_json("shipping_address_collection", &value(v));
        }
        if payment && !self.shipping_options.is_empty() {
            form.push_json("shipping_options", &value(&self.shipping_options));
        }
        if let Some(v) = &self.phone_number_collection {
            form.push_json("phone_number_collection", &value(v));
        }
        if let Some(v) = &self.billing_address_collection {
            form.push_json("billing_address_collection", &value(v));
        }
        if let Some(v) = &self.tax_id_collection {
            form.push_json("tax_id_collection", &value(v));
        }
        if let Some(v) = &self.automatic_tax {
            form.push_json("automatic_tax", &value(v));
        }
        if let Some(v) = &self.custom_text {
            form.push_json("custom_text", &value(v));
        }
        if !self.custom_fields.is_empty() {
            form.push_json("custom_fields", &value(&self.custom_fields));
        }
        if let Some(v) = &self.consent_collection {
            form.push_json("consent_collection", &value(v));
        }
        if payment {
            if let Some(v) = &self.invoice_creation {
                form.push_json("invoice_creation", &value(v));
            }
            if let Some(v) = &self.submit_type {
                form.push_json("submit_type", &value(v));
            }
            if let Some(v) = &self.saved_payment_method_options {
                form.push_json("saved_payment_method_options", &value(v));
            }
            if let Some(v) = &self.payment_intent_data {
                form.push_json("payment_intent_data", &value(v));
            }
        }
        let offered: Vec<&OptionalItem> = self
            .optional_items
            .iter()
            .filter(|item| !cart_prices.contains(&&item.price))
            .collect();
        if !offered.is_empty() {
            form.push_json("optional_items", &value(&offered));
        }
    }

    /// The prices of the optional items, for telling the order's added lines apart.
    #[must_use]
    pub fn optional_prices(&self) -> Vec<String> {
        self.optional_items
            .iter()
            .map(|i| i.price.to_string())
            .collect()
    }
}

/// Serialising any option to JSON through one function, so `push_to` reads as a list.
mod erased {
    pub trait ToJson {
        fn to_json(&self) -> serde_json::Value;
    }

    impl<T: serde::Serialize> ToJson for T {
        fn to_json(&self) -> serde_json::Value {
            serde_json::to_value(self).expect("policy options serialise")
        }
    }
}
