//! What a merchant page may ask for, parsed into types that can only hold a valid request.
//! Prices are Stripe Price IDs: amounts, `price_data` and any unknown field are refused, so a
//! client can never set what it pays.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::ids::{AccountId, CustomerId, PriceId};
pub use crate::mail::EmailAddress;
use crate::stripe::{LineItemRequest, Mode, UiMode};

pub use super::fields::{ClientReference, InvalidField, Locale, Metadata};

/// Stripe's cap on line items in one session.
pub const MAX_LINE_ITEMS: usize = 100;

/// `POST /checkout/sessions`, as JSON or as an HTML form.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateSessionRequest {
    pub line_items: Vec<LineItemRequest>,
    pub mode: RequestMode,
    #[serde(default = "hosted")]
    pub ui_mode: RequestUiMode,
    #[serde(default)]
    pub customer: Option<CustomerId>,
    #[serde(default)]
    pub customer_email: Option<EmailAddress>,
    #[serde(default)]
    pub locale: Option<Locale>,
    #[serde(default)]
    pub account: Option<AccountId>,
    #[serde(default)]
    pub metadata: Metadata,
    #[serde(default)]
    pub client_reference_id: Option<ClientReference>,
    /// The merchant server's word for which customer is signed in (`callers`); a raw
    /// `customer` is for server calls only.
    #[serde(default)]
    pub customer_token: Option<String>,
}

/// The modes a merchant page may ask for (setup-mode sessions are not a purchase).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestMode {
    Payment,
    Subscription,
}

impl From<RequestMode> for Mode {
    fn from(mode: RequestMode) -> Self {
        match mode {
            RequestMode::Payment => Mode::Payment,
            RequestMode::Subscription => Mode::Subscription,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestUiMode {
    Hosted,
    Embedded,
    /// Checkout Sessions with Elements: the merchant's page renders the payment form with
    /// Stripe.js from the session's `client_secret`.
    Custom,
}

impl From<RequestUiMode> for UiMode {
    fn from(mode: RequestUiMode) -> Self {
        match mode {
            RequestUiMode::Hosted => UiMode::Hosted,
            RequestUiMode::Embedded => UiMode::Embedded,
            RequestUiMode::Custom => UiMode::Custom,
        }
    }
}

fn hosted() -> RequestUiMode {
    RequestUiMode::Hosted
}

/// Limits from configuration that a request is checked against.
#[derive(Debug, Clone)]
pub struct RequestLimits {
    pub max_quantity: u32,
    pub allowed_prices: Option<Vec<PriceId>>,
}

impl RequestLimits {
    /// 1 to `MAX_LINE_ITEMS` items, each of an allowed price, each quantity within the limit.
    ///
    /// # Errors
    /// The first item at fault, named.
    pub fn check(&self, items: &[LineItemRequest]) -> Result<(), InvalidField> {
        if items.is_empty() || items.len() > MAX_LINE_ITEMS {
            return Err(InvalidField::new(
                "line_items",
                format!("between 1 and {MAX_LINE_ITEMS} items"),
            ));
        }
        for (i, item) in items.iter().enumerate() {
            if item.quantity == 0 || item.quantity > self.max_quantity {
                return Err(InvalidField::new(
                    format!("line_items[{i}].quantity"),
                    format!("between 1 and {}", self.max_quantity),
                ));
            }
            if let Some(allowed) = &self.allowed_prices
                && !allowed.contains(&item.price)
            {
                return Err(InvalidField::new(
                    format!("line_items[{i}].price"),
                    "this price is not sold here",
                ));
            }
        }
        Ok(())
    }
}

impl CreateSessionRequest {
    /// # Errors
    /// A field that is missing, unknown, malformed or over the limits, named.
    pub fn from_json(body: &[u8], limits: &RequestLimits) -> Result<Self, InvalidField> {
        let request: Self = parse_json(body)?;
        request.check(limits)
    }

    /// An HTML form post: `price`/`quantity` for one item, or `line_items[N][price]` and
    /// `line_items[N][quantity]`; `metadata[key]`; other fields by name. Mode defaults to
    /// payment, since the quick-start form is a bare button.
    ///
    /// # Errors
    /// A field that is missing, unknown, malformed or over the limits, named.
    pub fn from_form(body: &[u8], limits: &RequestLimits) -> Result<Self, InvalidField> {
        let mut fields = Map::new();
        let mut items: BTreeMap<usize, Map<String, Value>> = BTreeMap::new();
        let mut metadata = Map::new();
        for (key, value) in form_urlencoded::parse(body) {
            let value = value.into_owned();
            if let Some(rest) = key.strip_prefix("line_items[") {
                let parsed = rest.split_once("][").and_then(|(index, field)| {
                    Some((index.parse::<usize>().ok()?, field.strip_suffix(']')?))
                });
                let Some((index, field)) = parsed.filter(|(index, _)| *index < MAX_LINE_ITEMS * 2)
                else {
                    return Err(InvalidField::new(
                        key.as_ref(),
                        "expected line_items[N][price] or line_items[N][quantity]",
                    ));
                };
                items
                    .entry(index)
                    .or_default()
                    .insert(field.to_string(), form_value(field, value));
            } else if let Some(name) = key
                .strip_prefix("metadata[")
                .and_then(|k| k.strip_suffix(']'))
            {
                metadata.insert(name.to_string(), Value::String(value));
            } else if key == "price" || key == "quantity" {
                items
                    .entry(usize::MAX)
                    .or_default()
                    .insert(key.to_string(), form_value(&key, value));
            } else {
                fields.insert(key.into_owned(), Value::String(value));
            }
        }
        let line_items: Vec<Value> = items
            .into_values()
            .map(|mut item| {
                item.entry("quantity").or_insert(Value::from(1));
                Value::Object(item)
            })
            .collect();
        fields.insert("line_items".into(), Value::Array(line_items));
        fields
            .entry("mode")
            .or_insert_with(|| Value::String("payment".into()));
        if !metadata.is_empty() {
            fields.insert("metadata".into(), Value::Object(metadata));
        }
        let json = serde_json::to_vec(&Value::Object(fields)).expect("a map serializes");
        Self::from_json(&json, limits)
    }

    fn check(self, limits: &RequestLimits) -> Result<Self, InvalidField> {
        limits.check(&self.line_items)?;
        if (self.customer.is_some() || self.customer_token.is_some())
            && self.customer_email.is_some()
        {
            return Err(InvalidField::new(
                "customer_email",
                "give customer or customer_email, not both",
            ));
        }
        Ok(self)
    }
}

/// A JSON body as `T`, the error naming the field at fault (`line_items[0].price`).
///
/// # Errors
/// The body is not JSON of `T`'s shape: the field at fault and why.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, InvalidField> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let message = describe(e.inner());
        let path = e.path().to_string();
        // serde names a missing or unknown field only in its message; make it the field at
        // fault.
        let name_after = |prefix: &str| {
            message
                .strip_prefix(prefix)
                .and_then(|m| m.split('`').next())
                .map(str::to_string)
        };
        let missing = name_after("missing field `");
        // The path of an unknown field already ends with it, except at the top level.
        let unknown = name_after("unknown field `");
        let named = missing.clone().or_else(|| unknown.clone());
        let missing = missing.or_else(|| unknown.filter(|_| path == "."));
        let field = match (path.as_str(), missing.as_deref()) {
            (".", Some(name)) => name.to_string(),
            ("." | "?", None) => "body".to_string(),
            (path, Some(name)) => format!("{path}.{name}"),
            (path, None) => path.to_string(),
        };
        // A Checkout option a browser tries to set: say who sets it instead.
        let message = match named {
            Some(name) if message.starts_with("unknown") && is_policy_option(&name) => format!(
                "{name} is set by the merchant's shop policy (SHOP_POLICY), never by a request"
            ),
            _ => message,
        };
        InvalidField::new(field, message)
    })?;
    de.end()
        .map_err(|e| InvalidField::new("body", describe(&e)))?;
    Ok(value)
}

fn is_policy_option(name: &str) -> bool {
    crate::shop::OPTION_KEYS.contains(&name)
}

/// Quantities arrive as text in a form; anything that is not a number stays text and is
/// refused by the typed parse with the field's name.
fn form_value(field: &str, value: String) -> Value {
    match (field, value.parse::<u64>()) {
        ("quantity", Ok(n)) => Value::from(n),
        _ => Value::String(value),
    }
}

/// serde's message, without the "at line 1 column 7" position (the field name says where).
fn describe(err: &serde_json::Error) -> String {
    let text = err.to_string();
    match text.rfind(" at line ") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> RequestLimits {
        RequestLimits {
            max_quantity: 10,
            allowed_prices: None,
        }
    }

    fn parse(json: &str) -> Result<CreateSessionRequest, InvalidField> {
        CreateSessionRequest::from_json(json.as_bytes(), &limits())
    }

    #[test]
    fn parses_a_full_request() {
        let request = parse(
            r#"{"line_items":[{"price":"price_A","quantity":2},{"price":"price_B","quantity":1}],"mode":"subscription","ui_mode":"embedded",
                "customer_email":"jenny@example.com","locale":"fr","account":"acct_1X","metadata":{"cart":"42"},"client_reference_id":"user-42"}"#,
        )
        .unwrap();
        assert_eq!(request.line_items.len(), 2);
        assert_eq!(request.mode, RequestMode::Subscription);
        assert_eq!(request.ui_mode, RequestUiMode::Embedded);
        assert_eq!(
            request.customer_email.unwrap().as_str(),
            "jenny@example.com"
        );
        assert_eq!(request.locale.unwrap().as_str(), "fr");
        assert_eq!(request.account.unwrap().as_str(), "acct_1X");
        assert_eq!(request.client_reference_id.unwrap().as_str(), "user-42");
    }

    #[test]
    fn refuses_bad_requests_naming_the_field() {
        let long_key = format!(r#"{{"{}":"v"}}"#, "k".repeat(41));
        let many_keys = format!(
            "{{{}}}",
            (0..51)
                .map(|i| format!(r#""k{i}":"v""#))
                .collect::<Vec<_>>()
                .join(",")
        );
        let item = r#"{"price":"price_A","quantity":1}"#;
        let too_many = format!("[{}]", vec![item; 101].join(","));
        let cases: Vec<(String, &str)> = vec![
            (r#"{"mode":"payment"}"#.into(), "line_items"),
            (r#"{"line_items":[],"mode":"payment"}"#.into(), "line_items"),
            (
                format!(r#"{{"line_items":{too_many},"mode":"payment"}}"#),
                "line_items",
            ),
            (
                r#"{"line_items":[{"price_data":{"unit_amount":1}}],"mode":"payment"}"#.into(),
                "line_items[0].price_data",
            ),
            (
                r#"{"line_items":[{"price":"price_A","quantity":1,"amount":1}],"mode":"payment"}"#
                    .into(),
                "line_items[0].amount",
            ),
            (
                r#"{"line_items":[{"price":"prod_A","quantity":1}],"mode":"payment"}"#.into(),
                "line_items[0].price",
            ),
            (
                r#"{"line_items":[{"price":"price_A","quantity":0}],"mode":"payment"}"#.into(),
                "line_items[0].quantity",
            ),
            (
                r#"{"line_items":[{"price":"price_A","quantity":11}],"mode":"payment"}"#.into(),
                "line_items[0].quantity",
            ),
            (
                r#"{"line_items":[{"price":"price_A","quantity":-1}],"mode":"payment"}"#.into(),
                "line_items[0].quantity",
            ),
            (
                r#"{"line_items":[{"price":"price_A"}],"mode":"payment"}"#.into(),
                "line_items[0].quantity",
            ),
            (
                format!(r#"{{"line_items":[{item}],"mode":"setup"}}"#),
                "mode",
            ),
            (format!(r#"{{"line_items":[{item}]}}"#), "mode"),
            (
                format!(r#"{{"line_items":[{item}],"mode":"payment","ui_mode":"elements"}}"#),
                "ui_mode",
            ),
            (
                format!(
                    r#"{{"line_items":[{item}],"mode":"payment","customer_email":"not-an-email"}}"#
                ),
                "customer_email",
            ),
            (
                format!(
                    r#"{{"line_items":[{item}],"mode":"payment","customer_email":"a@b.c","customer":"cus_1"}}"#
                ),
                "customer_email",
            ),
            (
                format!(r#"{{"line_items":[{item}],"mode":"payment","customer":"acct_1"}}"#),
                "customer",
            ),
            (
                format!(
                    r#"{{"line_items":[{item}],"mode":"payment","client_reference_id":"{}"}}"#,
                    "u".repeat(201)
                ),
                "client_reference_id",
            ),
            (
                format!(r#"{{"line_items":[{item}],"mode":"payment","client_reference_id":""}}"#),
                "client_reference_id",
            ),
            (
                format!(
                    r#"{{"line_items":[{item}],"mode":"payment","client_reference_id":"a\u0000b"}}"#
                ),
                "client_reference_id",
            ),
            (
                format!(r#"{{"line_items":[{item}],"mode":"payment","locale":"klingon"}}"#),
                "locale",
            ),
            (
                format!(r#"{{"line_items":[{item}],"mode":"payment","account":"cus_1"}}"#),
                "account",
            ),
            (
                format!(r#"{{"line_items":[{item}],"mode":"payment","metadata":{long_key}}}"#),
                "metadata",
            ),
            (
                format!(r#"{{"line_items":[{item}],"mode":"payment","metadata":{many_keys}}}"#),
                "metadata",
            ),
            (
                format!(r#"{{"line_items":[{item}],"mode":"payment","amount":100}}"#),
                "amount",
            ),
            (
                format!(r#"{{"line_items":[{item}],"mode":"payment"}} trailing"#),
                "body",
            ),
            ("not json".into(), "body"),
        ];
        for (json, field) in cases {
            let err = parse(&json).expect_err(&json);
            assert_eq!(err.field, field, "{json}: {err}");
        }
    }

    #[test]
    fn the_allow_list_restricts_prices() {
        let limits = RequestLimits {
            max_quantity: 10,
            allowed_prices: Some(vec!["price_A".parse().unwrap()]),
        };
        let ok = r#"{"line_items":[{"price":"price_A","quantity":1}],"mode":"payment"}"#;
        assert!(CreateSessionRequest::from_json(ok.as_bytes(), &limits).is_ok());
        let other = ok.replace("price_A", "price_B");
        let err = CreateSessionRequest::from_json(other.as_bytes(), &limits).unwrap_err();
        assert_eq!(err.field, "line_items[0].price");
    }

    #[test]
    fn parses_html_forms() {
        let one = CreateSessionRequest::from_form(
            b"price=price_A&quantity=2&customer_email=a%40b.co",
            &limits(),
        )
        .unwrap();
        assert_eq!(
            one.line_items,
            vec![LineItemRequest {
                price: "price_A".parse().unwrap(),
                quantity: 2
            }]
        );
        assert_eq!(one.mode, RequestMode::Payment);
        let many = CreateSessionRequest::from_form(
            b"line_items[1][price]=price_B&line_items[0][price]=price_A&line_items[0][quantity]=3&mode=subscription&metadata[cart]=7",
            &limits(),
        )
        .unwrap();
        assert_eq!(many.line_items[0].quantity, 3);
        assert_eq!(many.line_items[1].quantity, 1);
        assert_eq!(many.mode, RequestMode::Subscription);
        let err =
            CreateSessionRequest::from_form(b"price=price_A&quantity=two", &limits()).unwrap_err();
        assert_eq!(err.field, "line_items[0].quantity");
        let err = CreateSessionRequest::from_form(b"line_items[x]=1", &limits()).unwrap_err();
        assert_eq!(err.field, "line_items[x]");
        let err =
            CreateSessionRequest::from_form(b"price=price_A&unit_amount=1", &limits()).unwrap_err();
        assert_eq!(err.field, "unit_amount");
    }
}
