//! The payment form beyond email and name: what a session's options ask of the customer,
//! shown on the hosted page (and the custom checkout's), read back from its POST, checked as
//! Stripe's page checks it, then written onto the session as Stripe fills it at basil.
//!
//! The fields the form posts (tests and the browser test post them directly, with the
//! page's `email`, `name` and `action=pay`):
//!
//! | field | when | value |
//! |---|---|---|
//! | `shipping_name`, `shipping_line1`, `shipping_postal_code`, `shipping_city` | `shipping_address_collection` | required |
//! | `shipping_country` | same | one of `allowed_countries` |
//! | `shipping_rate` | `shipping_options` | one of its `shr_…` (the page preselects the first) |
//! | `phone` | `phone_number_collection[enabled]=true` | required |
//! | `billing_line1`, `billing_postal_code`, `billing_city`, `billing_country` | no shipping address, `billing_address_collection=required` | required (with a shipping address, the billing address is that one) |
//! | `billing_country` | no shipping address, `automatic_tax[enabled]=true` | required: the country taxed |
//! | `tax_id_type`, `tax_id` | `tax_id_collection[enabled]=true` | `eu_vat` (the default), the number; optional |
//! | `custom_<key>` | each of `custom_fields` | required unless `optional` |
//! | `tos` | `consent_collection[terms_of_service]=required` | `on`, required |
//! | `optional_<price>` | each of `optional_items` | `on` adds it at its quantity |
//! | `optional_quantity_<price>` | an optional item with `adjustable_quantity` | its quantity, within the range |
//! | `quantity_<index>` | a line item (index in `line_items`) with `adjustable_quantity` | within the range; 0 removes the line |
//!
//! A checkbox is checked by `on` (what a browser sends), `true`, `yes` or `1`.

use std::collections::BTreeMap;

use checkout_core::money::Money;
use checkout_core::stripe::{
    Address, CollectedInformation, ShippingCost, ShippingDetails, ShippingRateRef, TaxId,
    TermsConsent,
};
use serde::Serialize;

use crate::session_options::{Adjustable, SessionOptions};
use crate::sessions::line_item;
use crate::{SimulatorConfig, StoredSession, tax};

/// The only tax id type the page offers.
const TAX_ID_TYPE: &str = "eu_vat";

#[derive(Serialize)]
struct RateView {
    id: String,
    name: String,
    amount: String,
    estimate: Option<String>,
}

#[derive(Serialize)]
struct OptionView {
    label: String,
    value: String,
}

#[derive(Serialize)]
struct FieldView {
    key: String,
    label: String,
    kind: &'static str,
    optional: bool,
    minimum_length: Option<u64>,
    maximum_length: Option<u64>,
    default_value: Option<String>,
    options: Vec<OptionView>,
}

#[derive(Serialize)]
struct OptionalView {
    price: String,
    name: String,
    amount: String,
    quantity: u64,
    minimum: Option<u64>,
    maximum: Option<u64>,
}

/// What the page shows beyond email and name.
#[derive(Serialize)]
pub(crate) struct FormView {
    countries: Option<Vec<String>>,
    rates: Vec<RateView>,
    phone: bool,
    /// `address` (the whole billing address) or `country` (for the tax only).
    billing: Option<&'static str>,
    tax_id: bool,
    fields: Vec<FieldView>,
    tos: bool,
    texts: BTreeMap<&'static str, String>,
    optional_items: Vec<OptionalView>,
    /// The Pay button's word, from `submit_type`.
    submit: &'static str,
}

/// Which billing fields the page asks for: none when a shipping address is collected (the
/// billing address is then the shipping one, or left to the card).
fn billing_fields(options: &SessionOptions) -> Option<&'static str> {
    if options.allowed_countries.is_some() {
        return None;
    }
    match (options.billing_address_collection, options.automatic_tax) {
        (Some("required"), _) => Some("address"),
        (_, true) => Some("country"),
        _ => None,
    }
}

pub(crate) fn view(stored: &StoredSession, config: &SimulatorConfig) -> FormView {
    let options = &stored.options;
    let rates = options
        .shipping_rates
        .iter()
        .filter_map(|id| config.shipping_rates.iter().find(|r| r.id == *id))
        .map(|r| RateView {
            id: r.id.clone(),
            name: r.display_name.clone(),
            amount: Money::new(r.amount, &r.currency).to_string(),
            estimate: r.estimate(),
        })
        .collect();
    let fields = options
        .custom_fields
        .iter()
        .map(|f| FieldView {
            key: f.key.clone(),
            label: f.label.clone(),
            kind: f.kind,
            optional: f.optional,
            minimum_length: f.minimum_length,
            maximum_length: f.maximum_length,
            default_value: f.default_value.clone(),
            options: f
                .options
                .iter()
                .map(|(label, value)| OptionView {
                    label: label.clone(),
                    value: value.clone(),
                })
                .collect(),
        })
        .collect();
    let optional_items = options
        .optional_items
        .iter()
        .filter_map(|item| {
            let price = config.catalog.iter().find(|c| c.price == item.price)?;
            Some(OptionalView {
                price: item.price.clone(),
                name: price.name.clone(),
                amount: Money::new(price.unit_amount, &price.currency).to_string(),
                quantity: item.quantity,
                minimum: item.adjustable.map(|a| a.minimum.max(1)),
                maximum: item.adjustable.map(|a| a.maximum),
            })
        })
        .collect();
    FormView {
        countries: options.allowed_countries.clone(),
        rates,
        phone: options.phone_number_collection,
        billing: billing_fields(options),
        tax_id: options.tax_id_collection.is_some_and(|(on, _)| on),
        fields,
        tos: options.terms_of_service == Some("required"),
        texts: options.custom_text.clone(),
        optional_items,
        submit: match options.submit_type {
            Some("book") => "Book",
            Some("donate") => "Donate",
            _ => "Pay",
        },
    }
}

/// What the customer entered, checked; [`apply`] writes it onto the session.
#[derive(Debug)]
pub(crate) struct Collected {
    /// New quantities of adjustable line items, by index.
    quantities: Vec<(usize, u64)>,
    /// Optional items added: price, quantity.
    added: Vec<(String, u64)>,
    shipping: Option<ShippingDetails>,
    rate: Option<String>,
    phone: Option<String>,
    billing: Option<Address>,
    tax_id: Option<TaxId>,
    /// Each custom field's answer, in the session's order.
    answers: Vec<Option<String>>,
}

/// The form's values, trimmed; an empty one is absent.
struct Form<'a>(&'a [(String, String)]);

impl Form<'_> {
    fn get(&self, name: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    fn checked(&self, name: &str) -> bool {
        self.get(name)
            .is_some_and(|v| matches!(v.as_str(), "on" | "true" | "yes" | "1"))
    }

    fn quantity(&self, name: &str, what: &str, range: Adjustable) -> Result<Option<u64>, String> {
        let Some(raw) = self.get(name) else {
            return Ok(None);
        };
        match raw.parse::<u64>() {
            Ok(q) if range.allows(q) => Ok(Some(q)),
            _ => Err(format!(
                "The quantity of {what} must be between {} and {}.",
                range.minimum, range.maximum
            )),
        }
    }

    /// An address's line1, postal code and city (all required) and its country.
    fn address(&self, prefix: &str, what: &str) -> Result<Address, String> {
        let part = |name: &str| self.get(&format!("{prefix}_{name}"));
        let (Some(line1), Some(postal_code), Some(city)) =
            (part("line1"), part("postal_code"), part("city"))
        else {
            return Err(format!(
                "Enter the {what} address: address line 1, postal code and city."
            ));
        };
        Ok(Address {
            line1: Some(line1),
            postal_code: Some(postal_code),
            city: Some(city),
            country: self.country(prefix, what)?.into(),
            ..Address::default()
        })
    }

    fn country(&self, prefix: &str, what: &str) -> Result<String, String> {
        let code = self
            .get(&format!("{prefix}_country"))
            .map(|c| c.to_ascii_uppercase())
            .ok_or_else(|| format!("Choose the {what} country."))?;
        if code.len() == 2 && code.bytes().all(|b| b.is_ascii_uppercase()) {
            Ok(code)
        } else {
            Err(format!("{code} is not a two-letter country code."))
        }
    }
}

/// Reads and checks the form against what the session asks; the first problem, as the page
/// shows it, is the error.
pub(crate) fn collect(
    stored: &StoredSession,
    form: &[(String, String)],
    config: &SimulatorConfig,
) -> Result<Collected, String> {
    let form = Form(form);
    let options = &stored.options;
    let mut quantities = Vec::new();
    for (index, item) in stored.items.iter().enumerate() {
        let name = format!("quantity_{index}");
        let what = item.description.clone().unwrap_or_default();
        match options.adjustable.get(index).copied().flatten() {
            Some(range) => {
                if let Some(q) = form.quantity(&name, &what, range)? {
                    quantities.push((index, q));
                }
            }
            None if form.get(&name).is_some() => {
                return Err(format!("The quantity of {what} cannot be changed."));
            }
            None => {}
        }
    }
    if let Some((name, _)) = form.0.iter().find(|(k, _)| {
        k.strip_prefix("quantity_")
            .is_some_and(|i| i.parse::<usize>().map_or(true, |i| i >= stored.items.len()))
    }) {
        return Err(format!("{name} names no line item of this session."));
    }
    let mut added = Vec::new();
    for item in &options.optional_items {
        if !form.checked(&format!("optional_{}", item.price)) {
            continue;
        }
        let what = config
            .catalog
            .iter()
            .find(|c| c.price == item.price)
            .map_or_else(|| item.price.clone(), |c| c.name.clone());
        let quantity = match item.adjustable {
            Some(range) => {
                let range = Adjustable {
                    minimum: range.minimum.max(1),
                    ..range
                };
                form.quantity(&format!("optional_quantity_{}", item.price), &what, range)?
            }
            None => None,
        };
        added.push((item.price.clone(), quantity.unwrap_or(item.quantity)));
    }
    let kept = stored
        .items
        .iter()
        .enumerate()
        .filter(|(i, _)| !quantities.contains(&(*i, 0)))
        .count();
    if kept + added.len() == 0 {
        return Err("Keep at least one item in the cart.".into());
    }
    let shipping = match &options.allowed_countries {
        None => None,
        Some(allowed) => {
            let name = form
                .get("shipping_name")
                .ok_or("Enter the name to ship to.")?;
            let address = form.address("shipping", "shipping")?;
            let country = address.country.clone().unwrap_or_default();
            if !allowed.contains(&country) {
                return Err(format!(
                    "We do not ship to {country}; choose one of {}.",
                    allowed.join(", ")
                ));
            }
            Some(ShippingDetails {
                name: Some(name),
                address: Some(address),
            })
        }
    };
    let rate = if options.shipping_rates.is_empty() {
        None
    } else {
        let rate = form.get("shipping_rate").ok_or("Choose a shipping rate.")?;
        if !options.shipping_rates.contains(&rate) {
            return Err(format!(
                "{rate} is not one of this session's shipping rates."
            ));
        }
        Some(rate)
    };
    let phone = if options.phone_number_collection {
        let raw = form.get("phone").ok_or("Enter a phone number.")?;
        let phone: String = raw
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
            .collect();
        let digits = phone.strip_prefix('+').unwrap_or(&phone);
        if digits.len() < 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("{raw} is not a phone number."));
        }
        Some(phone)
    } else {
        None
    };
    let billing = match billing_fields(options) {
        Some("address") => Some(form.address("billing", "billing")?),
        Some(_) => Some(Address {
            country: Some(form.country("billing", "billing")?),
            ..Address::default()
        }),
        None => None,
    };
    let tax_id = match form.get("tax_id") {
        Some(value) if options.tax_id_collection.is_some_and(|(on, _)| on) => {
            let kind = form.get("tax_id_type").unwrap_or(TAX_ID_TYPE.into());
            if kind != TAX_ID_TYPE {
                return Err(format!("{kind} is not a tax id type this page takes."));
            }
            let value: String = value
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect::<String>()
                .to_ascii_uppercase();
            let (country, number) = value.split_at(value.len().min(2));
            let looks_right = country.bytes().all(|b| b.is_ascii_uppercase())
                && (2..=13).contains(&number.len())
                && number.bytes().all(|b| b.is_ascii_alphanumeric());
            if !looks_right {
                return Err(format!(
                    "{value} is not a VAT number (two letters and 2 to 13 characters, such as FR12345678901)."
                ));
            }
            Some(TaxId { kind, value })
        }
        _ => None,
    };
    let mut answers = Vec::new();
    for field in &options.custom_fields {
        let answer = form.get(&format!("custom_{}", field.key));
        field.check(answer.as_deref())?;
        answers.push(answer);
    }
    if options.terms_of_service == Some("required") && !form.checked("tos") {
        return Err("Accept the terms of service to pay.".into());
    }
    Ok(Collected {
        quantities,
        added,
        shipping,
        rate,
        phone,
        billing,
        tax_id,
        answers,
    })
}

/// Writes what was collected onto the session, as Stripe fills it when the customer pays:
/// the cart (new quantities, optional items), `collected_information.shipping_details`, the
/// chosen rate in `shipping_cost`, `customer_details` (phone, billing address, tax ids), the
/// custom fields' answers, the terms accepted; then every amount again, tax included.
pub(crate) fn apply(stored: &mut StoredSession, collected: Collected, config: &SimulatorConfig) {
    for (index, quantity) in collected.quantities {
        let item = &mut stored.items[index];
        let unit = item.price.as_ref().and_then(|p| p.unit_amount).unwrap_or(0);
        item.quantity = Some(quantity);
        item.amount_subtotal = unit.saturating_mul(i64::try_from(quantity).unwrap_or(i64::MAX));
    }
    stored.items.retain(|i| i.quantity != Some(0));
    for (price, quantity) in collected.added {
        if let Some(price) = config.catalog.iter().find(|c| c.price == price) {
            stored.items.push(line_item(price, quantity));
        }
    }
    let options = &mut stored.options;
    let session = &mut stored.session;
    let billing = collected.billing.or_else(|| {
        (options.billing_address_collection == Some("required"))
            .then(|| collected.shipping.as_ref()?.address.clone())
            .flatten()
    });
    let details = session.customer_details.get_or_insert_default();
    details.phone = collected.phone;
    details.address = billing;
    if options.tax_id_collection.is_some_and(|(on, _)| on) {
        details.tax_ids = Some(collected.tax_id.into_iter().collect());
    }
    if let Some(shipping) = collected.shipping {
        session.collected_information = Some(CollectedInformation {
            shipping_details: Some(shipping),
        });
    }
    if let Some(rate) = collected.rate {
        session.shipping_cost = Some(ShippingCost {
            amount_subtotal: 0,
            amount_tax: 0,
            amount_total: 0,
            shipping_rate: Some(ShippingRateRef::Id(rate)),
        });
    }
    for (field, answer) in options.custom_fields.iter_mut().zip(collected.answers) {
        field.value = answer;
    }
    if options.terms_of_service == Some("required") {
        session.consent.get_or_insert_default().terms_of_service = Some(TermsConsent::Accepted);
    }
    tax::recompute(stored, config);
}
