//! The Checkout options of `POST /v1/checkout/sessions` beyond the cart: what the page collects
//! (shipping address and rate, phone, billing address, tax ids, custom fields, terms of
//! service), how it reads (custom texts, submit type), what paying does (automatic tax, an
//! invoice, saving the card), and what the customer may change in the cart (adjustable
//! quantities, optional items). Checked as Stripe checks them at the pinned version, kept with
//! the session, and echoed in the session object as Stripe does.
//!
//! Every parameter the route takes is in [`KNOWN`]; any other is refused with Stripe's
//! `parameter_unknown`, so a call relying on something the simulator would silently ignore
//! fails here rather than in production.

use std::collections::BTreeMap;

use checkout_core::money::Currency;
use checkout_core::stripe::Mode;
use http::StatusCode;
use serde_json::{Value, json};

use crate::api::{ApiError, Pairs, bad_request, param};
use crate::custom_fields::{self, CustomField};
use crate::params::{boolean, enabled, indices, integer, list, max_chars, one_of, required, sent};
use crate::{CatalogPrice, SimulatorConfig};

/// Every parameter the route takes: `#` is an index, `*` any metadata key.
pub(crate) const KNOWN: &[&str] = &[
    "mode",
    "ui_mode",
    "success_url",
    "cancel_url",
    "return_url",
    "expires_at",
    "customer",
    "customer_email",
    "customer_update[address]",
    "customer_update[shipping]",
    "customer_update[name]",
    "locale",
    "client_reference_id",
    "allow_promotion_codes",
    "billing_address_collection",
    "submit_type",
    "metadata",
    "metadata[*]",
    "expand[#]",
    "line_items[#][price]",
    "line_items[#][quantity]",
    "line_items[#][adjustable_quantity][enabled]",
    "line_items[#][adjustable_quantity][minimum]",
    "line_items[#][adjustable_quantity][maximum]",
    "after_expiration[recovery][enabled]",
    "after_expiration[recovery][allow_promotion_codes]",
    "consent_collection[promotions]",
    "consent_collection[terms_of_service]",
    "payment_intent_data[application_fee_amount]",
    "payment_intent_data[setup_future_usage]",
    "subscription_data[application_fee_percent]",
    "shipping_address_collection[allowed_countries][#]",
    "shipping_options[#][shipping_rate]",
    "phone_number_collection[enabled]",
    "tax_id_collection[enabled]",
    "tax_id_collection[required]",
    "automatic_tax[enabled]",
    "custom_text[after_submit][message]",
    "custom_text[shipping_address][message]",
    "custom_text[submit][message]",
    "custom_text[terms_of_service_acceptance][message]",
    "custom_fields[#][key]",
    "custom_fields[#][type]",
    "custom_fields[#][optional]",
    "custom_fields[#][label][type]",
    "custom_fields[#][label][custom]",
    "custom_fields[#][text][minimum_length]",
    "custom_fields[#][text][maximum_length]",
    "custom_fields[#][text][default_value]",
    "custom_fields[#][numeric][minimum_length]",
    "custom_fields[#][numeric][maximum_length]",
    "custom_fields[#][numeric][default_value]",
    "custom_fields[#][dropdown][options][#][label]",
    "custom_fields[#][dropdown][options][#][value]",
    "custom_fields[#][dropdown][default_value]",
    "invoice_creation[enabled]",
    "saved_payment_method_options[payment_method_save]",
    "optional_items[#][price]",
    "optional_items[#][quantity]",
    "optional_items[#][adjustable_quantity][enabled]",
    "optional_items[#][adjustable_quantity][minimum]",
    "optional_items[#][adjustable_quantity][maximum]",
];

/// The four places of `custom_text`, in Stripe's (alphabetical) order.
pub(crate) const CUSTOM_TEXTS: [&str; 4] = [
    "after_submit",
    "shipping_address",
    "submit",
    "terms_of_service_acceptance",
];

/// Countries Stripe's `allowed_countries` does not take (sanctioned, or no shipping).
const UNSHIPPABLE: [&str; 16] = [
    "AS", "CC", "CU", "CX", "FM", "HM", "IR", "KP", "MH", "MP", "NF", "PW", "SD", "SY", "UM", "VI",
];

/// Stripe's limits.
const MAX_SHIPPING_OPTIONS: usize = 5;
const MAX_OPTIONAL_ITEMS: usize = 10;
const MAX_ADJUSTABLE: u64 = 999_999;

/// `adjustable_quantity` when enabled: the range the customer may choose in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Adjustable {
    pub minimum: u64,
    pub maximum: u64,
}

impl Adjustable {
    pub fn allows(self, quantity: u64) -> bool {
        (self.minimum..=self.maximum).contains(&quantity)
    }

    fn json(self) -> Value {
        json!({"enabled": true, "minimum": self.minimum, "maximum": self.maximum})
    }
}

#[derive(Debug, Clone)]
pub(crate) struct OptionalItem {
    pub price: String,
    pub quantity: u64,
    pub adjustable: Option<Adjustable>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct SessionOptions {
    pub allow_promotion_codes: bool,
    /// `shipping_address_collection[allowed_countries]`, when the page collects an address.
    pub allowed_countries: Option<Vec<String>>,
    /// `shipping_options[N][shipping_rate]`, in order: the first is preselected.
    pub shipping_rates: Vec<String>,
    pub phone_number_collection: bool,
    /// `auto` or `required`, when given.
    pub billing_address_collection: Option<&'static str>,
    /// `tax_id_collection`: whether enabled, and its `required` (`never`, `if_supported`).
    pub tax_id_collection: Option<(bool, &'static str)>,
    pub automatic_tax: bool,
    /// By place (one of [`CUSTOM_TEXTS`]).
    pub custom_text: BTreeMap<&'static str, String>,
    pub custom_fields: Vec<CustomField>,
    /// `consent_collection[terms_of_service]`: `required` or `none`.
    pub terms_of_service: Option<&'static str>,
    pub invoice_creation: Option<bool>,
    pub submit_type: Option<&'static str>,
    pub payment_method_save: Option<&'static str>,
    pub setup_future_usage: Option<&'static str>,
    /// Per line item, by its index in `line_items`.
    pub adjustable: Vec<Option<Adjustable>>,
    pub optional_items: Vec<OptionalItem>,
}

fn payment_only(mode: Mode, what: &str, message: &str) -> Result<(), ApiError> {
    if mode == Mode::Payment {
        Ok(())
    } else {
        Err(ApiError {
            status: StatusCode::BAD_REQUEST,
            code: None,
            message: message.into(),
            param: Some(what.into()),
        })
    }
}

/// `…[adjustable_quantity]`: `enabled` required, `minimum` 0 and `maximum` 99 by default.
fn adjustable(form: &Pairs, item: &str) -> Result<Option<Adjustable>, ApiError> {
    let hash = format!("{item}[adjustable_quantity]");
    if enabled(form, &hash)? != Some(true) {
        return Ok(None);
    }
    let minimum = integer(form, &format!("{hash}[minimum]"))?.unwrap_or(0);
    let maximum = integer(form, &format!("{hash}[maximum]"))?.unwrap_or(99);
    if maximum > MAX_ADJUSTABLE || minimum > maximum {
        return Err(bad_request(
            &format!(
                "{hash}[maximum] must be at most {MAX_ADJUSTABLE} and not less than {hash}[minimum]."
            ),
            &format!("{hash}[maximum]"),
        ));
    }
    Ok(Some(Adjustable { minimum, maximum }))
}

fn quantity_in_range(item: &str, quantity: u64, range: Option<Adjustable>) -> Result<(), ApiError> {
    match range {
        Some(range) if !range.allows(quantity) => Err(bad_request(
            &format!(
                "The quantity of {item} ({quantity}) must be between its adjustable_quantity minimum ({}) and maximum ({}).",
                range.minimum, range.maximum
            ),
            &format!("{item}[quantity]"),
        )),
        _ => Ok(()),
    }
}

/// What the options are checked against: the session's mode, currency and cart.
pub(crate) struct Cart<'a> {
    pub mode: Mode,
    pub currency: &'a Currency,
    pub quantities: &'a [u64],
}

impl SessionOptions {
    /// Reads and checks the options; the first one Stripe would refuse is the error.
    pub(crate) fn parse(
        form: &Pairs,
        cart: &Cart<'_>,
        config: &SimulatorConfig,
    ) -> Result<Self, ApiError> {
        let mode = cart.mode;
        if sent(form, "payment_intent_data") {
            payment_only(
                mode,
                "payment_intent_data",
                "You can not pass `payment_intent_data` in `subscription` mode.",
            )?;
        }
        if sent(form, "subscription_data") && mode == Mode::Payment {
            return Err(bad_request(
                "You can not pass `subscription_data` in `payment` mode.",
                "subscription_data",
            ));
        }
        let mut options = Self {
            allow_promotion_codes: boolean(form, "allow_promotion_codes")?.unwrap_or(false),
            allowed_countries: Self::allowed_countries(form)?,
            shipping_rates: Self::shipping_rates(form, cart, config)?,
            phone_number_collection: enabled(form, "phone_number_collection")?.unwrap_or(false),
            billing_address_collection: one_of(
                form,
                "billing_address_collection",
                &["auto", "required"],
            )?,
            automatic_tax: enabled(form, "automatic_tax")?.unwrap_or(false),
            custom_fields: custom_fields::parse(form)?,
            terms_of_service: one_of(
                form,
                "consent_collection[terms_of_service]",
                &["none", "required"],
            )?,
            payment_method_save: one_of(
                form,
                "saved_payment_method_options[payment_method_save]",
                &["disabled", "enabled"],
            )?,
            setup_future_usage: one_of(
                form,
                "payment_intent_data[setup_future_usage]",
                &["off_session", "on_session"],
            )?,
            optional_items: Self::optional_items(form, cart, config)?,
            ..Self::default()
        };
        one_of(form, "consent_collection[promotions]", &["auto", "none"])?;
        if let Some(on) = enabled(form, "tax_id_collection")? {
            let needed = one_of(
                form,
                "tax_id_collection[required]",
                &["if_supported", "never"],
            )?;
            options.tax_id_collection = Some((on, needed.unwrap_or("never")));
        }
        for place in CUSTOM_TEXTS {
            let key = format!("custom_text[{place}][message]");
            if let Some(text) = max_chars(form, &key, 1200)? {
                options.custom_text.insert(place, text);
            }
        }
        options.invoice_creation = enabled(form, "invoice_creation")?;
        if options.invoice_creation.is_some() {
            payment_only(
                mode,
                "invoice_creation",
                "You can only enable invoice creation when `mode` is set to `payment`. Invoices are created automatically when `mode` is set to `subscription`, and are unsupported when set to `setup`. To learn more visit https://stripe.com/docs/payments/checkout/post-payment-invoices.",
            )?;
        }
        options.submit_type = one_of(form, "submit_type", &["auto", "book", "donate", "pay"])?;
        if options.submit_type.is_some() {
            payment_only(
                mode,
                "submit_type",
                "`submit_type` can only be used in `payment` mode.",
            )?;
        }
        for (i, &quantity) in cart.quantities.iter().enumerate() {
            let item = format!("line_items[{i}]");
            let range = adjustable(form, &item)?;
            quantity_in_range(&item, quantity, range)?;
            options.adjustable.push(range);
        }
        Ok(options)
    }

    fn allowed_countries(form: &Pairs) -> Result<Option<Vec<String>>, ApiError> {
        if !sent(form, "shipping_address_collection") {
            return Ok(None);
        }
        let listed = list(form, "shipping_address_collection[allowed_countries]");
        if listed.is_empty() {
            return Err(required("shipping_address_collection[allowed_countries]"));
        }
        let mut countries: Vec<String> = Vec::new();
        for (name, code) in listed {
            let two_capitals = code.len() == 2 && code.bytes().all(|b| b.is_ascii_uppercase());
            if !two_capitals || UNSHIPPABLE.contains(&code.as_str()) {
                return Err(bad_request(
                    &format!(
                        "Invalid {name}: {code:?} is not a country Stripe ships to (ISO 3166-1 alpha-2 in capitals, such as FR)"
                    ),
                    &name,
                ));
            }
            if !countries.contains(&code) {
                countries.push(code);
            }
        }
        Ok(Some(countries))
    }

    fn shipping_rates(
        form: &Pairs,
        cart: &Cart<'_>,
        config: &SimulatorConfig,
    ) -> Result<Vec<String>, ApiError> {
        let sent = indices(form, "shipping_options");
        if sent.is_empty() {
            return Ok(Vec::new());
        }
        payment_only(
            cart.mode,
            "shipping_options",
            "`shipping_options` can only be used in `payment` mode.",
        )?;
        if sent.len() > MAX_SHIPPING_OPTIONS {
            return Err(bad_request(
                &format!("shipping_options may have at most {MAX_SHIPPING_OPTIONS} elements."),
                "shipping_options",
            ));
        }
        let mut rates = Vec::new();
        for i in sent {
            let key = format!("shipping_options[{i}][shipping_rate]");
            let id = param(form, &key).ok_or_else(|| required(&key))?;
            let Some(rate) = config.shipping_rates.iter().find(|r| r.id == id) else {
                return Err(ApiError {
                    status: StatusCode::BAD_REQUEST,
                    code: Some("resource_missing"),
                    message: format!("No such shipping rate: '{id}'"),
                    param: Some(key),
                });
            };
            if &rate.currency != cart.currency {
                return Err(bad_request(
                    &format!(
                        "The shipping rate {id} is in {}, but the session's currency is {}.",
                        rate.currency, cart.currency
                    ),
                    &key,
                ));
            }
            rates.push(id.to_string());
        }
        Ok(rates)
    }

    fn optional_items(
        form: &Pairs,
        cart: &Cart<'_>,
        config: &SimulatorConfig,
    ) -> Result<Vec<OptionalItem>, ApiError> {
        let sent = indices(form, "optional_items");
        if sent.len() > MAX_OPTIONAL_ITEMS {
            return Err(bad_request(
                &format!("optional_items may have at most {MAX_OPTIONAL_ITEMS} elements."),
                "optional_items",
            ));
        }
        let mut items = Vec::new();
        for i in sent {
            let item = format!("optional_items[{i}]");
            let key = format!("{item}[price]");
            let id = param(form, &key).ok_or_else(|| required(&key))?;
            let price: &CatalogPrice =
                config
                    .catalog
                    .iter()
                    .find(|c| c.price == id)
                    .ok_or_else(|| ApiError {
                        status: StatusCode::BAD_REQUEST,
                        code: Some("resource_missing"),
                        message: format!("No such price: '{id}'"),
                        param: Some(key.clone()),
                    })?;
            if &price.currency != cart.currency {
                return Err(bad_request(
                    &format!(
                        "The price {id} is in {}, but the session's currency is {}.",
                        price.currency, cart.currency
                    ),
                    &key,
                ));
            }
            if cart.mode == Mode::Payment && price.recurring.is_some() {
                return Err(bad_request(
                    "You specified `payment` mode but passed a recurring price. Either switch to `subscription` mode or use only one-time prices.",
                    &key,
                ));
            }
            let quantity_key = format!("{item}[quantity]");
            let quantity = integer(form, &quantity_key)?.ok_or_else(|| required(&quantity_key))?;
            if quantity == 0 {
                return Err(bad_request(
                    "This value must be greater than or equal to 1.",
                    &quantity_key,
                ));
            }
            let range = adjustable(form, &item)?;
            quantity_in_range(&item, quantity, range)?;
            items.push(OptionalItem {
                price: id.to_string(),
                quantity,
                adjustable: range,
            });
        }
        Ok(items)
    }
}

/// What the echo of the options depends on beyond them. `complete`: the session is paid
/// (automatic tax is then `complete`, no longer waiting for an address).
pub(crate) struct Echo<'a> {
    pub mode: Mode,
    pub complete: bool,
    pub has_customer: bool,
    pub collects_promotions: bool,
    pub config: &'a SimulatorConfig,
}

impl SessionOptions {
    pub(crate) fn echo(&self, value: &mut Value, echo: &Echo<'_>) {
        value["allow_promotion_codes"] = self.allow_promotion_codes.then_some(true).into();
        value["automatic_tax"] = json!({
            "enabled": self.automatic_tax,
            "liability": self.automatic_tax.then(|| json!({"type": "self"})),
            "status": self.automatic_tax.then_some(if echo.complete { "complete" } else { "requires_location_inputs" }),
        });
        value["billing_address_collection"] = self.billing_address_collection.into();
        value["consent_collection"] = if echo.collects_promotions || self.terms_of_service.is_some()
        {
            json!({
                "payment_method_reuse_agreement": null,
                "promotions": echo.collects_promotions.then_some("auto"),
                "terms_of_service": self.terms_of_service,
            })
        } else {
            Value::Null
        };
        value["custom_fields"] = self.custom_fields.iter().map(CustomField::json).collect();
        value["custom_text"] = CUSTOM_TEXTS
            .iter()
            .map(|place| {
                let message = self.custom_text.get(place).map(|m| json!({"message": m}));
                ((*place).to_string(), message.unwrap_or(Value::Null))
            })
            .collect::<serde_json::Map<_, _>>()
            .into();
        value["invoice_creation"] = if echo.mode == Mode::Payment {
            json!({
                "enabled": self.invoice_creation.unwrap_or(false),
                "invoice_data": {
                    "account_tax_ids": null, "custom_fields": null, "description": null,
                    "footer": null, "issuer": null, "metadata": {}, "rendering_options": null,
                },
            })
        } else {
            Value::Null
        };
        value["phone_number_collection"] = json!({"enabled": self.phone_number_collection});
        value["saved_payment_method_options"] =
            if echo.has_customer || self.payment_method_save.is_some() {
                json!({
                    "allow_redisplay_filters": ["always"],
                    "payment_method_remove": null,
                    "payment_method_save": self.payment_method_save,
                })
            } else {
                Value::Null
            };
        value["shipping_address_collection"] = self
            .allowed_countries
            .as_ref()
            .map_or(Value::Null, |c| json!({"allowed_countries": c}));
        value["shipping_options"] = self
            .shipping_rates
            .iter()
            .map(|id| {
                let amount = echo
                    .config
                    .shipping_rates
                    .iter()
                    .find(|r| r.id == *id)
                    .map(|r| r.amount);
                json!({"shipping_amount": amount, "shipping_rate": id})
            })
            .collect();
        value["submit_type"] = self.submit_type.into();
        // Keys Stripe's object has only when the session was created with them.
        if let Some((enabled, required)) = self.tax_id_collection {
            value["tax_id_collection"] = json!({"enabled": enabled, "required": required});
        }
        if !self.optional_items.is_empty() {
            value["optional_items"] = self
                .optional_items
                .iter()
                .map(|item| {
                    json!({
                        "adjustable_quantity": item.adjustable.map(Adjustable::json),
                        "price": item.price,
                        "quantity": item.quantity,
                    })
                })
                .collect();
        }
    }
}
