//! The CloudWatch dashboard in the SAM template shows what the code emits: every metric of
//! the bundle's namespace it plots is one a function writes (with the dimension it groups
//! by), every function's errors and throttles and every failure queue are on it, and its
//! alarm widget lists every alarm. A dashboard that plots a metric nobody emits shows a flat
//! line that reads as "all is well".

use std::collections::BTreeSet;
use std::path::Path;

use checkout_core::metrics::NAMESPACE;
use serde_json::Value as Json;
use serde_yaml_ng::Value;

fn template() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/template.yaml");
    serde_yaml_ng::from_str(&std::fs::read_to_string(path).expect("read template"))
        .expect("template is YAML")
}

fn resources_of_type(template: &Value, kind: &str) -> BTreeSet<String> {
    template["Resources"]
        .as_mapping()
        .expect("resources")
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some(kind))
        .map(|(name, _)| name.as_str().expect("name").to_string())
        .collect()
}

/// The dashboard body with each `${Name}` / `${Name.Attr}` replaced by `<Name>` /
/// `<Name.Attr>`, after checking that each names a resource or a pseudo parameter.
fn dashboard(template: &Value) -> Json {
    let body = &template["Resources"]["Dashboard"]["Properties"]["DashboardBody"];
    let Value::Tagged(sub) = body else {
        panic!("DashboardBody is a !Sub: {body:?}")
    };
    assert_eq!(sub.tag.to_string(), "!Sub");
    let text = sub.value.as_str().expect("a string to substitute");
    let resources = template["Resources"].as_mapping().expect("resources");
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').expect("closed substitution") + start;
        let name = &rest[start + 2..end];
        let resource = name.split('.').next().expect("a name");
        assert!(
            name.starts_with("AWS::") || resources.contains_key(resource),
            "the dashboard substitutes ${{{name}}}, which is not a resource of the template"
        );
        out.push('<');
        out.push_str(name);
        out.push('>');
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    serde_json::from_str(&out).expect("the dashboard body is JSON")
}

/// Every metric entry of every metric widget: arrays `[namespace, name, dim, value, ...]`
/// and `SEARCH('{namespace,dim} MetricName="name"', ...)` expressions, as
/// (namespace, name, dimension names, dimension values). The `"..."` shorthand repeats the
/// entry above it and is skipped.
fn plotted(dashboard: &Json) -> Vec<(String, String, Vec<String>, Vec<String>)> {
    let mut out = Vec::new();
    for widget in dashboard["widgets"].as_array().expect("widgets") {
        if widget["type"] != "metric" {
            continue;
        }
        for metric in widget["properties"]["metrics"]
            .as_array()
            .expect("a metric widget has metrics")
        {
            if let Some(expression) = metric.get("expression").and_then(Json::as_str) {
                let inner = expression
                    .strip_prefix("SEARCH('{")
                    .unwrap_or_else(|| panic!("only SEARCH expressions are used: {expression}"));
                let (schema, query) = inner.split_once("} ").expect("a search schema");
                let mut parts = schema.split(',').map(str::to_string);
                let namespace = parts.next().expect("a namespace");
                let name = query
                    .strip_prefix("MetricName=\"")
                    .and_then(|q| q.split('"').next())
                    .expect("a metric name");
                out.push((namespace, name.to_string(), parts.collect(), Vec::new()));
                continue;
            }
            let parts: Vec<&str> = metric
                .as_array()
                .expect("a metric array")
                .iter()
                .filter_map(Json::as_str)
                .collect();
            if parts.first() == Some(&"...") {
                continue;
            }
            let (names, values) = parts[2..]
                .chunks(2)
                .map(|p| (p[0].to_string(), p[1].to_string()))
                .unzip();
            out.push((parts[0].to_string(), parts[1].to_string(), names, values));
        }
    }
    out
}

/// The text of each `metrics::emit(...)` call in the common crate, by metric name.
fn emitted() -> Vec<(String, String)> {
    fn walk(dir: &Path, out: &mut Vec<(String, String)>) {
        for entry in std::fs::read_dir(dir).expect("read source dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let source = std::fs::read_to_string(&path).expect("read source");
                for (at, _) in source.match_indices("metrics::emit(") {
                    let call = &source[at..];
                    let call = &call[..call.find(");").expect("a closed call")];
                    let name = call.split('"').nth(1).expect("a literal metric name");
                    out.push((name.to_string(), call.to_string()));
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/src"),
        &mut out,
    );
    out
}

#[test]
fn every_bundle_metric_on_the_dashboard_is_emitted_with_its_dimensions() {
    let template = template();
    let emitted = emitted();
    assert!(emitted.len() > 20, "the scan found the emit calls");
    let ours: Vec<_> = plotted(&dashboard(&template))
        .into_iter()
        .filter(|(namespace, ..)| namespace == NAMESPACE)
        .collect();
    assert!(ours.len() > 20, "the dashboard plots the bundle's metrics");
    for (_, name, dimensions, values) in &ours {
        let calls: Vec<&String> = emitted
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, call)| call)
            .collect();
        assert!(
            !calls.is_empty(),
            "the dashboard plots {name}, which nothing emits"
        );
        // The dimension names are in the call, or (the reconciler's) in a `dims` it is given.
        for dimension in dimensions {
            assert!(
                calls
                    .iter()
                    .any(|c| c.contains(&format!("(\"{dimension}\"")) || c.contains("&dims")),
                "{name} is plotted by {dimension}, which its emit calls do not set"
            );
        }
        // CloudWatch matches the whole dimension set: a plot without dimensions needs an
        // emit without them.
        if dimensions.is_empty() {
            assert!(
                calls.iter().any(|c| c.contains("&[]")),
                "{name} is plotted without dimensions, but emitted only with some"
            );
        }
        for value in values {
            assert!(!value.is_empty(), "{name} has an empty dimension value");
        }
    }
    for name in [
        "EventsReceived",
        "EventLagSeconds",
        "EventsUnresolved",
        "ConfirmationEmailsSent",
        "RecoveryEmailsSkipped",
        "RecoveryConversions",
        "RecoveredRevenue",
    ] {
        assert!(
            ours.iter().any(|(_, n, ..)| n == name),
            "the dashboard shows {name}"
        );
    }
}

#[test]
fn every_function_queue_and_alarm_is_on_the_dashboard() {
    let template = template();
    let board = dashboard(&template);
    let plotted = plotted(&board);
    let with = |namespace: &str, metric: &str, dimension: &str| -> BTreeSet<String> {
        plotted
            .iter()
            .filter(|(ns, name, dims, _)| {
                ns == namespace && name == metric && dims.first().is_some_and(|d| d == dimension)
            })
            .map(|(.., values)| values[0].trim_matches(['<', '>']).to_string())
            .collect()
    };
    let functions = resources_of_type(&template, "AWS::Serverless::Function");
    assert_eq!(functions.len(), 6);
    assert_eq!(with("AWS/Lambda", "Errors", "FunctionName"), functions);
    assert_eq!(with("AWS/Lambda", "Throttles", "FunctionName"), functions);
    assert_eq!(
        with("AWS/Lambda", "Duration", "FunctionName"),
        BTreeSet::from(["WebhookFunction".to_string()])
    );
    let queues: BTreeSet<String> = resources_of_type(&template, "AWS::SQS::Queue")
        .into_iter()
        .map(|q| format!("{q}.QueueName"))
        .collect();
    assert_eq!(queues.len(), 3);
    assert_eq!(
        with("AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName"),
        queues
    );
    let alarms: BTreeSet<String> = resources_of_type(&template, "AWS::CloudWatch::Alarm")
        .into_iter()
        .map(|a| format!("<{a}.Arn>"))
        .collect();
    let shown: BTreeSet<String> = board["widgets"]
        .as_array()
        .expect("widgets")
        .iter()
        .filter(|w| w["type"] == "alarm")
        .flat_map(|w| w["properties"]["alarms"].as_array().expect("alarms").iter())
        .map(|a| a.as_str().expect("an alarm ARN").to_string())
        .collect();
    assert_eq!(shown, alarms, "the alarm widget lists every alarm");
}
