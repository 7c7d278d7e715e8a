//! Custom fields (`custom_fields[N]`, at most three): their definition as Stripe checks it at
//! creation, their shape in the session (the field's type carrying its settings and, once
//! paid, the customer's answer), and the answer as Stripe's page takes it.

use serde_json::{Value, json};

use crate::api::{ApiError, Pairs, bad_request, param};
use crate::params::{alphanumeric, boolean, indices, integer, max_chars, one_of, required, sent};

const MAX_CUSTOM_FIELDS: usize = 3;

/// One custom field, and once paid the customer's answer.
#[derive(Debug, Clone)]
pub(crate) struct CustomField {
    pub key: String,
    pub label: String,
    /// `text`, `numeric` or `dropdown`.
    pub kind: &'static str,
    pub optional: bool,
    pub minimum_length: Option<u64>,
    pub maximum_length: Option<u64>,
    pub default_value: Option<String>,
    /// A dropdown's options: label, value.
    pub options: Vec<(String, String)>,
    pub value: Option<String>,
}

impl CustomField {
    /// As in the session: the field's own type carries its settings and the answer.
    pub(crate) fn json(&self) -> Value {
        let typed = match self.kind {
            "dropdown" => json!({
                "default_value": self.default_value,
                "options": self.options.iter()
                    .map(|(label, value)| json!({"label": label, "value": value}))
                    .collect::<Vec<_>>(),
                "value": self.value,
            }),
            _ => json!({
                "default_value": self.default_value,
                "maximum_length": self.maximum_length,
                "minimum_length": self.minimum_length,
                "value": self.value,
            }),
        };
        let mut field = json!({
            "key": self.key,
            "label": {"custom": self.label, "type": "custom"},
            "optional": self.optional,
            "type": self.kind,
            "dropdown": null,
            "numeric": null,
            "text": null,
        });
        field[self.kind] = typed;
        field
    }

    /// The answer as Stripe's page takes it: required unless optional, one of a dropdown's
    /// values, digits only for a numeric field, within the field's lengths.
    pub(crate) fn check(&self, answer: Option<&str>) -> Result<(), String> {
        let Some(value) = answer else {
            if self.optional {
                return Ok(());
            }
            return Err(format!("{} is required.", self.label));
        };
        if self.kind == "dropdown" {
            if self.options.iter().any(|(_, v)| v == value) {
                return Ok(());
            }
            return Err(format!("Choose one of the options for {}.", self.label));
        }
        if self.kind == "numeric" && !value.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("{} takes digits only.", self.label));
        }
        let (least, most) = (
            self.minimum_length.unwrap_or(1),
            self.maximum_length.unwrap_or(255),
        );
        let length = u64::try_from(value.chars().count()).unwrap_or(u64::MAX);
        if !(least..=most).contains(&length) {
            return Err(format!(
                "{} must be {least} to {most} characters.",
                self.label
            ));
        }
        Ok(())
    }
}

/// Reads and checks `custom_fields[N]`: a unique alphanumeric key, a type, a custom label,
/// the settings of that type only.
pub(crate) fn parse(form: &Pairs) -> Result<Vec<CustomField>, ApiError> {
    let listed = indices(form, "custom_fields");
    if listed.len() > MAX_CUSTOM_FIELDS {
        return Err(bad_request(
            &format!("custom_fields may have at most {MAX_CUSTOM_FIELDS} elements."),
            "custom_fields",
        ));
    }
    let mut fields: Vec<CustomField> = Vec::new();
    for i in listed {
        let at = |rest: &str| format!("custom_fields[{i}]{rest}");
        let key = alphanumeric(form, &at("[key]"), 200)?;
        if fields.iter().any(|f| f.key == key) {
            return Err(bad_request(
                &format!("custom_fields keys must be unique; {key} is used twice."),
                &at("[key]"),
            ));
        }
        let kind = one_of(form, &at("[type]"), &["dropdown", "numeric", "text"])?
            .ok_or_else(|| required(&at("[type]")))?;
        one_of(form, &at("[label][type]"), &["custom"])?
            .ok_or_else(|| required(&at("[label][type]")))?;
        let label = max_chars(form, &at("[label][custom]"), 50)?
            .ok_or_else(|| required(&at("[label][custom]")))?;
        for other in ["dropdown", "numeric", "text"] {
            if other != kind && sent(form, &at(&format!("[{other}]"))) {
                return Err(bad_request(
                    &format!("custom_fields[{i}][{other}] can only be set when type is {other}."),
                    &at(&format!("[{other}]")),
                ));
            }
        }
        let mut field = CustomField {
            key,
            label,
            kind,
            optional: boolean(form, &at("[optional]"))?.unwrap_or(false),
            minimum_length: None,
            maximum_length: None,
            default_value: None,
            options: Vec::new(),
            value: None,
        };
        if kind == "dropdown" {
            dropdown(form, i, &mut field)?;
        } else {
            let limit = |name: &str| -> Result<Option<u64>, ApiError> {
                let key = at(&format!("[{kind}][{name}]"));
                match integer(form, &key)? {
                    Some(n) if !(1..=255).contains(&n) => Err(bad_request(
                        &format!("Invalid {key}: must be between 1 and 255"),
                        &key,
                    )),
                    n => Ok(n),
                }
            };
            field.minimum_length = limit("minimum_length")?;
            field.maximum_length = limit("maximum_length")?;
            if field.minimum_length.unwrap_or(0) > field.maximum_length.unwrap_or(255) {
                return Err(bad_request(
                    "minimum_length must not be greater than maximum_length.",
                    &at(&format!("[{kind}][minimum_length]")),
                ));
            }
            field.default_value = max_chars(form, &at(&format!("[{kind}][default_value]")), 255)?;
        }
        fields.push(field);
    }
    Ok(fields)
}

fn dropdown(form: &Pairs, i: usize, field: &mut CustomField) -> Result<(), ApiError> {
    let prefix = format!("custom_fields[{i}][dropdown][options]");
    let sent = indices(form, &prefix);
    if sent.is_empty() {
        return Err(required(&prefix));
    }
    if sent.len() > 200 {
        return Err(bad_request(
            "A dropdown may have at most 200 options.",
            &prefix,
        ));
    }
    for j in sent {
        let label = max_chars(form, &format!("{prefix}[{j}][label]"), 100)?
            .ok_or_else(|| required(&format!("{prefix}[{j}][label]")))?;
        let value = alphanumeric(form, &format!("{prefix}[{j}][value]"), 100)?;
        if field.options.iter().any(|(_, v)| *v == value) {
            return Err(bad_request(
                &format!("Dropdown option values must be unique; {value} is used twice."),
                &format!("{prefix}[{j}][value]"),
            ));
        }
        field.options.push((label, value));
    }
    let default_key = format!("custom_fields[{i}][dropdown][default_value]");
    if let Some(default) = param(form, &default_key) {
        if !field.options.iter().any(|(_, v)| v == default) {
            return Err(bad_request(
                &format!("{default_key} must be the value of one of the options."),
                &default_key,
            ));
        }
        field.default_value = Some(default.to_string());
    }
    Ok(())
}
