//! CloudWatch metrics as Embedded Metric Format log lines: one JSON object on stdout per
//! data point, which CloudWatch Logs turns into metrics with no API call from the function.

use serde_json::{Map, Value, json};

use crate::clock::Clock;

pub const NAMESPACE: &str = "StripeCheckoutBundle";

#[derive(Debug, Clone, Copy)]
pub enum Unit {
    Count,
    /// Amounts in the smallest currency unit (EMF has no currency unit).
    None,
    Seconds,
}

/// Builds the EMF line for one metric with its dimensions.
#[must_use]
pub fn line(
    name: &str,
    value: f64,
    unit: Unit,
    dimensions: &[(&str, &str)],
    timestamp_ms: i64,
) -> Value {
    let mut root = Map::new();
    let names: Vec<&str> = dimensions.iter().map(|(k, _)| *k).collect();
    root.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [names],
                "Metrics": [{"Name": name, "Unit": match unit { Unit::Count => "Count", Unit::None => "None", Unit::Seconds => "Seconds" }}]
            }]
        }),
    );
    for (key, value) in dimensions {
        root.insert((*key).into(), json!(value));
    }
    root.insert(name.into(), json!(value));
    Value::Object(root)
}

/// Writes one metric to stdout, where Lambda's log capture picks it up.
#[expect(
    clippy::print_stdout,
    reason = "EMF lines are read from stdout by CloudWatch Logs"
)]
pub fn emit(name: &str, value: f64, unit: Unit, dimensions: &[(&str, &str)]) {
    let now = Clock::system().now_millis();
    println!("{}", line(name, value, unit, dimensions, now));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_shape() {
        let line = line(
            "RecoveryEmailsSkipped",
            1.0,
            Unit::Count,
            &[("Reason", "cooldown")],
            42,
        );
        assert_eq!(line["_aws"]["CloudWatchMetrics"][0]["Namespace"], NAMESPACE);
        assert_eq!(
            line["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Reason"]])
        );
        assert_eq!(
            line["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"],
            "RecoveryEmailsSkipped"
        );
        assert_eq!(line["Reason"], "cooldown");
        assert_eq!(line["RecoveryEmailsSkipped"], 1.0);
        assert_eq!(line["_aws"]["Timestamp"], 42);
    }
}
