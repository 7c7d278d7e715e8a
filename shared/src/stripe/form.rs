//! Stripe's form encoding: nested parameters as bracketed keys, in the order given
//! (`line_items[0][price]=price_1&after_expiration[recovery][enabled]=true`).

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Form(Vec<(String, String)>);

impl Form {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, key: impl Into<String>, value: impl ToString) -> &mut Self {
        self.0.push((key.into(), value.to_string()));
        self
    }

    pub fn push_opt(&mut self, key: impl Into<String>, value: Option<impl ToString>) -> &mut Self {
        if let Some(value) = value {
            self.push(key, value);
        }
        self
    }

    /// A JSON value in Stripe's parameter shape, flattened under `key` the way Stripe's form
    /// encoding nests it: objects as `key[field]`, arrays as `key[0]`, booleans as
    /// `true`/`false`; `null` is left out. Used for the shop policy, written in Stripe's own
    /// shapes so the merchant can copy them from Stripe's API reference.
    pub fn push_json(&mut self, key: &str, value: &serde_json::Value) -> &mut Self {
        use serde_json::Value;
        match value {
            Value::Null => {}
            Value::Bool(b) => {
                self.push(key, b);
            }
            Value::Number(n) => {
                self.push(key, n);
            }
            Value::String(s) => {
                self.push(key, s);
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    self.push_json(&format!("{key}[{i}]"), item);
                }
            }
            Value::Object(fields) => {
                for (name, field) in fields {
                    self.push_json(&format!("{key}[{name}]"), field);
                }
            }
        }
        self
    }

    #[must_use]
    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }

    #[must_use]
    pub fn encode(&self) -> String {
        form_urlencoded::Serializer::new(String::new())
            .extend_pairs(self.0.iter())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_nested_keys_and_special_characters() {
        let mut form = Form::new();
        form.push("line_items[0][price]", "price_1")
            .push(
                "success_url",
                "https://example.com/ok?session_id={CHECKOUT_SESSION_ID}",
            )
            .push_opt("customer", None::<&str>)
            .push_opt("locale", Some("fr"));
        assert_eq!(
            form.encode(),
            "line_items%5B0%5D%5Bprice%5D=price_1\
             &success_url=https%3A%2F%2Fexample.com%2Fok%3Fsession_id%3D%7BCHECKOUT_SESSION_ID%7D\
             &locale=fr"
        );
    }

    #[test]
    fn json_flattens_into_brackets_and_drops_nulls() {
        let mut form = Form::new();
        form.push_json(
            "custom_fields",
            &serde_json::json!([{"key": "gift", "optional": true, "label": {"custom": "Gift?"},
                                 "text": null, "dropdown": {"options": [{"value": "a"}]}}]),
        );
        let pairs: Vec<(&str, &str)> = form
            .pairs()
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("custom_fields[0][dropdown][options][0][value]", "a"),
                ("custom_fields[0][key]", "gift"),
                ("custom_fields[0][label][custom]", "Gift?"),
                ("custom_fields[0][optional]", "true"),
            ]
        );
    }
}
