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
}
