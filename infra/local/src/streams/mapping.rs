//! One function's event source mapping on the events table's stream, read from the SAM
//! template the binary was built with, so the local poller cannot drift from what AWS runs.
//! Defaults are Lambda's (docs: "Lambda parameters for Amazon DynamoDB event source
//! mappings"); a property the poller does not model is refused rather than ignored.

use std::time::Duration;

use serde_yaml_ng::Value;

use super::filter::Pattern;

/// The template the binary was built with (cargo rebuilds when it changes).
const TEMPLATE: &str = include_str!("../../../template.yaml");

/// The mappings this poller follows are those on this stream.
const EVENTS_STREAM: &str = "EventsTable.StreamArn";

/// Lambda does not document its pause between retries of a stream batch; a second keeps a
/// retried record visible in the logs without spinning.
const RETRY_PAUSE: Duration = Duration::from_secs(1);

const MODELLED: &[&str] = &[
    "Stream",
    "StartingPosition",
    "BatchSize",
    "MaximumBatchingWindowInSeconds",
    "FunctionResponseTypes",
    "BisectBatchOnFunctionError",
    "MaximumRetryAttempts",
    "MaximumRecordAgeInSeconds",
    "DestinationConfig",
    "FilterCriteria",
    "ParallelizationFactor",
    "Enabled",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartingPosition {
    TrimHorizon,
    Latest,
}

#[derive(Debug, Clone)]
pub struct Mapping {
    /// The function's logical id in the template (`FulfillmentFunction`).
    pub function: String,
    pub enabled: bool,
    /// Where a mapping with no saved position starts.
    pub starting_position: StartingPosition,
    pub batch_size: usize,
    pub batching_window: Duration,
    /// `FunctionResponseTypes: [ReportBatchItemFailures]`: without it a response is ignored.
    pub report_item_failures: bool,
    pub bisect_on_error: bool,
    /// `None`: -1, retried until the record is too old or trimmed.
    pub max_retries: Option<u32>,
    /// `None`: -1, no limit.
    pub max_record_age: Option<Duration>,
    /// The on-failure destination's logical id (`FulfillmentFailures`).
    pub on_failure: Option<String>,
    /// Empty: every record is delivered.
    pub filters: Vec<Pattern>,
    /// Local only: the pause before a retry (short in tests).
    pub retry_pause: Duration,
}

impl Mapping {
    /// A mapping with Lambda's defaults, as `CreateEventSourceMapping` would make it.
    pub fn lambda_defaults(function: &str) -> Self {
        Self {
            function: function.to_string(),
            enabled: true,
            starting_position: StartingPosition::TrimHorizon,
            batch_size: 100,
            batching_window: Duration::ZERO,
            report_item_failures: false,
            bisect_on_error: false,
            max_retries: None,
            max_record_age: None,
            on_failure: None,
            filters: Vec::new(),
            retry_pause: RETRY_PAUSE,
        }
    }

    /// The mapping of `function` on the events table's stream in infra/template.yaml.
    ///
    /// # Errors
    /// The function has no such mapping, or it uses a setting the poller does not model.
    pub fn from_template(function: &str) -> Result<Self, String> {
        Self::from_yaml(TEMPLATE, function)
    }

    fn from_yaml(template: &str, function: &str) -> Result<Self, String> {
        let template: Value = serde_yaml_ng::from_str(template)
            .map_err(|e| format!("infra/template.yaml is not YAML: {e}"))?;
        let events = &template["Resources"][function]["Properties"]["Events"];
        let mut on_stream = events
            .as_mapping()
            .into_iter()
            .flat_map(|m| m.values())
            .filter(|event| event["Type"].as_str() == Some("DynamoDB"))
            .map(|event| &event["Properties"])
            .filter(|props| get_att(&props["Stream"]) == Some(EVENTS_STREAM));
        let (Some(properties), None) = (on_stream.next(), on_stream.next()) else {
            return Err(format!(
                "{function} must have exactly one DynamoDB event on {EVENTS_STREAM} in infra/template.yaml"
            ));
        };
        Self::from_properties(function, properties)
            .map_err(|e| format!("{function}'s stream mapping in infra/template.yaml: {e}"))
    }

    fn from_properties(function: &str, properties: &Value) -> Result<Self, String> {
        let properties = properties
            .as_mapping()
            .ok_or("Properties is not a mapping")?;
        if let Some(key) = properties
            .keys()
            .map(|k| k.as_str().unwrap_or_default())
            .find(|k| !MODELLED.contains(k))
        {
            return Err(format!(
                "{key} is not modelled by the local stream poller (infra/local/src/streams)"
            ));
        }
        let mut mapping = Self::lambda_defaults(function);
        let get = |key: &str| properties.get(key);
        mapping.starting_position = match get("StartingPosition").and_then(Value::as_str) {
            Some("TRIM_HORIZON") => StartingPosition::TrimHorizon,
            Some("LATEST") => StartingPosition::Latest,
            other => return Err(format!("StartingPosition {other:?} is not modelled")),
        };
        if let Some(enabled) = get("Enabled") {
            mapping.enabled = enabled.as_bool().ok_or("Enabled is not a boolean")?;
        }
        if let Some(size) = get("BatchSize") {
            mapping.batch_size = positive(size, "BatchSize")?;
        }
        if let Some(window) = get("MaximumBatchingWindowInSeconds") {
            mapping.batching_window =
                Duration::from_secs(positive(window, "MaximumBatchingWindowInSeconds")? as u64);
        }
        if let Some(types) = get("FunctionResponseTypes") {
            let types = types
                .as_sequence()
                .ok_or("FunctionResponseTypes is not a list")?;
            mapping.report_item_failures = types
                .iter()
                .any(|t| t.as_str() == Some("ReportBatchItemFailures"));
        }
        if let Some(bisect) = get("BisectBatchOnFunctionError") {
            mapping.bisect_on_error = bisect
                .as_bool()
                .ok_or("BisectBatchOnFunctionError is not a boolean")?;
        }
        if let Some(retries) = get("MaximumRetryAttempts") {
            mapping.max_retries = unbounded(retries, "MaximumRetryAttempts")?
                .map(|n| u32::try_from(n).unwrap_or(u32::MAX));
        }
        if let Some(age) = get("MaximumRecordAgeInSeconds") {
            mapping.max_record_age =
                unbounded(age, "MaximumRecordAgeInSeconds")?.map(Duration::from_secs);
        }
        if let Some(destination) = get("DestinationConfig") {
            let target = get_att(&destination["OnFailure"]["Destination"])
                .ok_or("DestinationConfig.OnFailure.Destination is not a !GetAtt")?;
            let name = target.split('.').next().unwrap_or(target);
            mapping.on_failure = Some(name.to_string());
        }
        if let Some(criteria) = get("FilterCriteria") {
            let filters = criteria["Filters"]
                .as_sequence()
                .ok_or("FilterCriteria.Filters is not a list")?;
            mapping.filters = filters
                .iter()
                .map(|f| {
                    f["Pattern"]
                        .as_str()
                        .ok_or_else(|| "a filter has no Pattern string".to_string())
                        .and_then(Pattern::parse)
                })
                .collect::<Result<_, _>>()?;
        }
        if let Some(factor) = get("ParallelizationFactor") {
            // Records of one item stay in order at any factor; one batch per shard at a
            // time only changes throughput, which a local stack does not need.
            if positive(factor, "ParallelizationFactor")? > 1 {
                tracing::warn!(
                    function,
                    "ParallelizationFactor > 1: the local poller runs one batch per shard at a time"
                );
            }
        }
        Ok(mapping)
    }
}

/// The `A.B` of a `!GetAtt A.B`.
fn get_att(value: &Value) -> Option<&str> {
    match value {
        Value::Tagged(tagged) if tagged.tag == "GetAtt" => tagged.value.as_str(),
        _ => None,
    }
}

fn positive(value: &Value, key: &str) -> Result<usize, String> {
    value
        .as_u64()
        .and_then(|n| usize::try_from(n).ok())
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("{key} is not a positive integer literal"))
}

/// A count where -1 means no limit.
fn unbounded(value: &Value, key: &str) -> Result<Option<u64>, String> {
    match value.as_i64() {
        Some(-1) => Ok(None),
        Some(n) if n >= 0 => Ok(Some(n.unsigned_abs())),
        _ => Err(format!("{key} is not -1 or a non-negative integer literal")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(kind: &str) -> serde_json::Value {
        json!({"eventName": "INSERT", "dynamodb": {"NewImage": {"type": {"S": kind}}}})
    }

    /// The values infra/template.yaml sets today; the poller reads them from it, so a change
    /// there changes the local stack and this test says so.
    #[test]
    fn the_three_mappings_are_read_from_the_template() {
        for (function, retries, age, destination, kind) in [
            (
                "FulfillmentFunction",
                20,
                86_400,
                "FulfillmentFailures",
                "charge.refunded",
            ),
            (
                "RecoveryFunction",
                10,
                21_600,
                "RecoveryFailures",
                "checkout.session.expired",
            ),
            (
                "SubscriptionsFunction",
                20,
                86_400,
                "SubscriptionsFailures",
                "invoice.paid",
            ),
        ] {
            let mapping = Mapping::from_template(function).unwrap();
            assert!(mapping.enabled, "{function}");
            assert_eq!(mapping.starting_position, StartingPosition::TrimHorizon);
            assert_eq!(mapping.batch_size, 10, "{function}");
            assert_eq!(mapping.batching_window, Duration::ZERO, "{function}");
            assert!(mapping.report_item_failures, "{function}");
            assert!(mapping.bisect_on_error, "{function}");
            assert_eq!(mapping.max_retries, Some(retries), "{function}");
            assert_eq!(mapping.max_record_age, Some(Duration::from_secs(age)));
            assert_eq!(mapping.on_failure.as_deref(), Some(destination));
            assert_eq!(mapping.filters.len(), 1, "{function}");
            assert!(super::super::filter::delivered(
                &mapping.filters,
                &record(kind)
            ));
            assert!(!super::super::filter::delivered(
                &mapping.filters,
                &record("ping")
            ));
        }
    }

    #[test]
    fn a_function_without_a_mapping_on_the_events_stream_is_refused() {
        assert!(Mapping::from_template("WebhookFunction").is_err());
        assert!(Mapping::from_template("NoSuchFunction").is_err());
    }

    const TEMPLATE: &str = "
Resources:
  F:
    Properties:
      Events:
        Events:
          Type: DynamoDB
          Properties:
            Stream: !GetAtt EventsTable.StreamArn
            StartingPosition: LATEST
            EXTRA
";

    #[test]
    fn unset_settings_take_lambdas_defaults() {
        let mapping = Mapping::from_yaml(&TEMPLATE.replace("EXTRA", ""), "F").unwrap();
        assert_eq!(mapping.starting_position, StartingPosition::Latest);
        assert_eq!(mapping.batch_size, 100);
        assert!(!mapping.report_item_failures && !mapping.bisect_on_error);
        assert_eq!((mapping.max_retries, mapping.max_record_age), (None, None));
        assert!(mapping.filters.is_empty() && mapping.on_failure.is_none());
    }

    #[test]
    fn settings_the_poller_does_not_model_are_refused() {
        for extra in [
            "TumblingWindowInSeconds: 60",
            "BatchSize: !Ref Size",
            "MaximumRetryAttempts: -2",
            r#"FilterCriteria: { Filters: [ { Pattern: '{"eventName": [{"prefix": "I"}]}' } ] }"#,
        ] {
            let err = Mapping::from_yaml(&TEMPLATE.replace("EXTRA", extra), "F").unwrap_err();
            assert!(err.contains("F's stream mapping"), "{extra}: {err}");
        }
    }
}
