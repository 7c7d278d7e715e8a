//! An event source mapping's `FilterCriteria`, applied as Lambda applies it: a record that
//! matches no filter is never delivered and counts as processed. Only the rules the template
//! uses are modelled (nested fields and lists of exact values); a pattern with any other rule
//! (`prefix`, `exists`, `numeric`…) is refused when the mapping is read, so the local stack
//! never silently delivers what Lambda would not.

use serde_json::Value;

/// One `Filters[].Pattern`.
#[derive(Debug, Clone, PartialEq)]
pub enum Pattern {
    /// Every field must match.
    Fields(Vec<(String, Pattern)>),
    /// The record's value (or one of its values, when a list) equals one of these.
    OneOf(Vec<Value>),
}

impl Pattern {
    /// # Errors
    /// The pattern is not JSON, or uses a rule the local poller does not model.
    pub fn parse(pattern: &str) -> Result<Self, String> {
        let value: Value = serde_json::from_str(pattern)
            .map_err(|e| format!("filter pattern is not JSON: {e}"))?;
        Self::from_value(&value)
    }

    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Object(fields) => fields
                .iter()
                .map(|(key, rule)| Ok((key.clone(), Self::from_value(rule)?)))
                .collect::<Result<_, String>>()
                .map(Self::Fields),
            Value::Array(values) => {
                if let Some(rule) = values.iter().find(|v| v.is_object() || v.is_array()) {
                    return Err(format!(
                        "filter rule {rule} is not modelled by the local stream poller (only exact values are)"
                    ));
                }
                Ok(Self::OneOf(values.clone()))
            }
            other => Err(format!(
                "filter pattern value {other} must be an object or a list of values"
            )),
        }
    }

    /// Whether `record` (the record as Lambda delivers it, as JSON) matches.
    pub fn matches(&self, record: &Value) -> bool {
        match self {
            Self::Fields(fields) => fields.iter().all(|(key, rule)| {
                record
                    .get(key)
                    .is_some_and(|value| !value.is_null() && rule.matches(value))
            }),
            Self::OneOf(allowed) => match record {
                Value::Array(values) => values.iter().any(|v| allowed.contains(v)),
                value => allowed.contains(value),
            },
        }
    }
}

/// Lambda delivers a record when it matches any of the mapping's filters, or when there are none.
pub fn delivered(filters: &[Pattern], record: &Value) -> bool {
    filters.is_empty() || filters.iter().any(|f| f.matches(record))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const INSERTED_PAID: &str = r#"{"eventName": ["INSERT"], "dynamodb": {"NewImage": {"type": {"S": ["checkout.session.completed", "invoice.paid"]}}}}"#;

    fn record(event_name: &str, kind: &str) -> Value {
        json!({"eventName": event_name, "dynamodb": {"NewImage": {"type": {"S": kind}, "id": {"S": "evt_1"}}}})
    }

    #[test]
    fn a_record_matches_when_every_field_has_an_allowed_value() {
        let pattern = Pattern::parse(INSERTED_PAID).unwrap();
        assert!(pattern.matches(&record("INSERT", "invoice.paid")));
        assert!(!pattern.matches(&record("MODIFY", "invoice.paid")));
        assert!(!pattern.matches(&record("INSERT", "checkout.session.expired")));
        assert!(!pattern.matches(&json!({"eventName": "INSERT", "dynamodb": {}})));
    }

    #[test]
    fn any_filter_delivers_and_no_filter_delivers_everything() {
        let paid = Pattern::parse(INSERTED_PAID).unwrap();
        let removed = Pattern::parse(r#"{"eventName": ["REMOVE"]}"#).unwrap();
        assert!(delivered(&[], &record("MODIFY", "x")));
        assert!(delivered(
            &[paid.clone(), removed.clone()],
            &record("REMOVE", "x")
        ));
        assert!(!delivered(
            &[paid, removed],
            &record("MODIFY", "invoice.paid")
        ));
    }

    #[test]
    fn rules_beyond_exact_values_are_refused() {
        assert!(Pattern::parse(r#"{"eventName": [{"prefix": "INS"}]}"#).is_err());
        assert!(Pattern::parse(r#"{"eventName": "INSERT"}"#).is_err());
        assert!(Pattern::parse("not json").is_err());
    }
}
