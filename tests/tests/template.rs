//! The SAM template and the code agree, so what runs locally (tables created from
//! `store::tables` specs) and what is deployed cannot drift: the tables' keys, streams and
//! TTLs, each stream's event filter, and each function's environment, which must load into
//! that function's typed config and hold no secret value.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use checkout_core::{
    checkout::CheckoutConfig,
    config::Source,
    fulfillment::{self, ConfirmationConfig, FulfillmentConfig},
    reconcile::{ConsumersConfig, ReconcileConfig},
    recovery::{self, RecoveryConfig},
    secrets::PARAMETER_SUFFIX,
    store::tables::{self, TableSpec},
    webhook::WebhookConfig,
};
use serde_yaml_ng::Value;

fn template() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/template.yaml");
    serde_yaml_ng::from_str(&std::fs::read_to_string(path).expect("read template"))
        .expect("template is YAML")
}

fn resource<'a>(template: &'a Value, name: &str) -> &'a Value {
    template["Resources"]
        .get(name)
        .unwrap_or_else(|| panic!("resource {name} in the template"))
}

/// `!Tag value` as (tag, value).
fn tagged(value: &Value) -> Option<(String, &Value)> {
    match value {
        Value::Tagged(t) => Some((
            t.tag.to_string().trim_start_matches('!').to_string(),
            &t.value,
        )),
        _ => None,
    }
}

fn text(value: &Value) -> &str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("a string: {value:?}"))
}

#[test]
fn tables_match_the_specs_the_local_stack_creates_them_from() {
    let template = template();
    let specs: [(&str, &TableSpec); 5] = [
        ("EventsTable", &tables::EVENTS),
        ("SessionsTable", &tables::SESSIONS),
        ("OrdersTable", &tables::ORDERS),
        ("RecoveryTable", &tables::RECOVERY),
        ("ReconcileTable", &tables::RECONCILE),
    ];
    let declared: BTreeSet<&str> = template["Resources"]
        .as_mapping()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::DynamoDB::Table")
        .map(|(name, _)| text(name))
        .collect();
    assert_eq!(
        declared,
        specs.iter().map(|(name, _)| *name).collect(),
        "every table in the template has a spec in store::tables, and the reverse"
    );
    for (name, spec) in specs {
        let table = resource(&template, name);
        let p = &table["Properties"];
        assert_eq!(p["BillingMode"], "PAY_PER_REQUEST", "{name}");
        assert_eq!(p["KeySchema"].as_sequence().unwrap().len(), 1, "{name}");
        assert_eq!(
            p["KeySchema"][0]["AttributeName"], spec.partition_key,
            "{name}"
        );
        assert_eq!(p["KeySchema"][0]["KeyType"], "HASH", "{name}");
        // The table's key and each index's keys, with their types, and nothing else.
        let mut expected: BTreeMap<&str, &str> = BTreeMap::from([(spec.partition_key, "S")]);
        for index in spec.indexes {
            expected.insert(index.partition_key, "S");
            expected.insert(index.sort_key, "N");
        }
        let defined: BTreeMap<&str, &str> = p["AttributeDefinitions"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|d| (text(&d["AttributeName"]), text(&d["AttributeType"])))
            .collect();
        assert_eq!(defined, expected, "{name} attribute definitions");
        let indexes: Vec<(&str, &str, &str, &str)> = p["GlobalSecondaryIndexes"]
            .as_sequence()
            .map(|seq| {
                seq.iter()
                    .map(|i| {
                        assert_eq!(i["KeySchema"][0]["KeyType"], "HASH", "{name}");
                        assert_eq!(i["KeySchema"][1]["KeyType"], "RANGE", "{name}");
                        (
                            text(&i["IndexName"]),
                            text(&i["KeySchema"][0]["AttributeName"]),
                            text(&i["KeySchema"][1]["AttributeName"]),
                            text(&i["Projection"]["ProjectionType"]),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let specified: Vec<(&str, &str, &str, &str)> = spec
            .indexes
            .iter()
            .map(|i| {
                let projection = if i.keys_only { "KEYS_ONLY" } else { "ALL" };
                (i.name, i.partition_key, i.sort_key, projection)
            })
            .collect();
        assert_eq!(indexes, specified, "{name} indexes");
        assert_eq!(
            p["StreamSpecification"]["StreamViewType"].as_str(),
            spec.stream.as_ref().map(|v| v.as_str()),
            "{name} stream"
        );
        assert_eq!(
            p["TimeToLiveSpecification"]["AttributeName"].as_str(),
            spec.ttl_attribute,
            "{name} TTL"
        );
        if spec.ttl_attribute.is_some() {
            assert_eq!(p["TimeToLiveSpecification"]["Enabled"], true, "{name}");
        }
        assert_eq!(
            p["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"], true,
            "{name}"
        );
        assert_eq!(table["DeletionPolicy"], "Retain", "{name}");
    }
}

#[test]
fn each_stream_subscription_filters_exactly_the_events_its_handler_acts_on() {
    let template = template();
    for (function, handled) in [
        ("FulfillmentFunction", fulfillment::STREAM_EVENTS),
        ("RecoveryFunction", recovery::STREAM_EVENTS),
    ] {
        let events = &resource(&template, function)["Properties"]["Events"];
        let streams: Vec<&Value> = events
            .as_mapping()
            .unwrap()
            .values()
            .filter(|e| e["Type"] == "DynamoDB")
            .map(|e| &e["Properties"])
            .collect();
        assert_eq!(streams.len(), 1, "{function}: one stream subscription");
        let p = streams[0];
        let (tag, target) = tagged(&p["Stream"]).expect("!GetAtt");
        assert_eq!(
            (tag.as_str(), text(target)),
            ("GetAtt", "EventsTable.StreamArn")
        );
        assert_eq!(
            p["FunctionResponseTypes"][0], "ReportBatchItemFailures",
            "{function}"
        );
        assert_eq!(p["BisectBatchOnFunctionError"], true, "{function}");
        let retries = p["MaximumRetryAttempts"].as_i64().expect("bounded retries");
        assert!((1..=100).contains(&retries), "{function}");
        let age = p["MaximumRecordAgeInSeconds"]
            .as_i64()
            .expect("bounded age");
        assert!((60..=604_800).contains(&age), "{function}");
        assert_eq!(
            p["DestinationConfig"]["OnFailure"]["Type"], "SQS",
            "{function}"
        );

        let filters = p["FilterCriteria"]["Filters"].as_sequence().unwrap();
        assert_eq!(filters.len(), 1, "{function}");
        let pattern: serde_json::Value =
            serde_json::from_str(text(&filters[0]["Pattern"])).expect("filter pattern is JSON");
        assert_eq!(
            pattern["eventName"],
            serde_json::json!(["INSERT"]),
            "{function}"
        );
        let filtered: BTreeSet<&str> = pattern["dynamodb"]["NewImage"]["type"]["S"]
            .as_array()
            .expect("types filtered on the stored `type` attribute")
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        let expected: BTreeSet<&str> = handled.iter().map(|t| t.as_str()).collect();
        assert_eq!(filtered, expected, "{function}");
    }
}

/// A function's environment as CloudFormation would set it with the parameters' defaults
/// (and sample values for the parameters that have none), recording what the code reads.
struct TemplateEnv {
    vars: BTreeMap<String, String>,
    read: RefCell<BTreeSet<String>>,
}

impl Source for TemplateEnv {
    fn get(&self, var: &str) -> Option<String> {
        self.read.borrow_mut().insert(var.to_string());
        self.vars.get(var).cloned()
    }
}

struct Resolver<'a> {
    template: &'a Value,
}

impl Resolver<'_> {
    /// Parameters without a default get what a merchant would type in `sam deploy --guided`.
    fn parameter(&self, name: &str) -> Option<String> {
        let parameter = self.template["Parameters"].get(name)?;
        let sample = match name {
            "CheckoutSuccessUrl" => "https://shop.example/thanks?session_id={CHECKOUT_SESSION_ID}",
            "MailFrom" => "orders@shop.example",
            "MailIdentity" => "shop.example",
            "MerchantName" => "Shop",
            "MerchantPostalAddress" => "1 Main St, Springfield",
            _ => return Some(self.scalar(&parameter["Default"]).expect("a default")),
        };
        assert!(parameter.get("Default").is_none(), "{name} has a default");
        Some(sample.into())
    }

    fn scalar(&self, value: &Value) -> Option<String> {
        match value {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    fn reference(&self, name: &str) -> String {
        match name {
            "AWS::Region" => "us-east-1".into(),
            "AWS::URLSuffix" => "amazonaws.com".into(),
            "AWS::AccountId" => "123456789012".into(),
            "AWS::Partition" => "aws".into(),
            "AWS::StackName" => "checkout".into(),
            // Resources: their logical id stands in for the generated name.
            other => self.parameter(other).unwrap_or_else(|| {
                resource(self.template, other);
                other.to_string()
            }),
        }
    }

    fn condition(&self, name: &str) -> bool {
        self.truth(&self.template["Conditions"][name])
    }

    fn truth(&self, value: &Value) -> bool {
        let (tag, args) = tagged(value).expect("a condition function");
        match tag.as_str() {
            "Not" => !self.truth(&args[0]),
            "Equals" => self.resolve(&args[0]) == self.resolve(&args[1]),
            other => panic!("condition !{other} not understood by this test"),
        }
    }

    fn resolve(&self, value: &Value) -> String {
        if let Some(s) = self.scalar(value) {
            return s;
        }
        let (tag, args) =
            tagged(value).unwrap_or_else(|| panic!("a scalar or a function: {value:?}"));
        match tag.as_str() {
            "Ref" => self.reference(text(args)),
            "Join" => {
                let parts: Vec<String> = match &args[1] {
                    Value::Sequence(items) => items.iter().map(|i| self.resolve(i)).collect(),
                    list => self
                        .resolve(list)
                        .split(',')
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect(),
                };
                parts.join(text(&args[0]))
            }
            "If" => {
                let branch = if self.condition(text(&args[0])) {
                    &args[1]
                } else {
                    &args[2]
                };
                self.resolve(branch)
            }
            "Sub" => {
                let mut out = String::new();
                let mut rest = text(args);
                while let Some(start) = rest.find("${") {
                    out.push_str(&rest[..start]);
                    let end = rest[start..].find('}').expect("closed ${") + start;
                    out.push_str(&self.reference(&rest[start + 2..end]));
                    rest = &rest[end + 1..];
                }
                out + rest
            }
            other => panic!("!{other} not understood by this test"),
        }
    }

    fn environment(&self, function: &str) -> BTreeMap<String, Value> {
        let mut vars = BTreeMap::new();
        for source in [
            &self.template["Globals"]["Function"]["Environment"]["Variables"],
            &resource(self.template, function)["Properties"]["Environment"]["Variables"],
        ] {
            for (k, v) in source.as_mapping().into_iter().flatten() {
                vars.insert(text(k).to_string(), v.clone());
            }
        }
        vars
    }
}

/// Secrets are never template values: only the names of SSM parameters are, each a `!Ref` to
/// a template parameter. The test stands in for Parameter Store with sample values.
fn function_env(template: &Value, function: &str) -> TemplateEnv {
    let resolver = Resolver { template };
    let mut vars = BTreeMap::new();
    for (name, value) in resolver.environment(function) {
        for secret in [
            "STRIPE_SECRET_KEY",
            "STRIPE_WEBHOOK_SECRET",
            "UNSUBSCRIBE_SECRET",
        ] {
            assert_ne!(
                name, secret,
                "{function}: {secret} must come from Parameter Store"
            );
        }
        if let Some(var) = name.strip_suffix(PARAMETER_SUFFIX) {
            let (tag, parameter) = tagged(&value).expect("a parameter name from the template");
            let sample = match (tag.as_str(), var) {
                // A secret: the name of a SecureString the merchant creates.
                ("Ref", _) => {
                    assert!(
                        template["Parameters"][text(parameter)]["AllowedPattern"].is_string(),
                        "{function}: {name} names a checked parameter"
                    );
                    match var {
                        "STRIPE_SECRET_KEY" => "sk_test_from_parameter_store".to_string(),
                        "STRIPE_WEBHOOK_SECRET" => "whsec_from_parameter_store".to_string(),
                        "UNSUBSCRIBE_SECRET" => {
                            "0123456789abcdef0123456789abcdef01234567".to_string()
                        }
                        other => panic!("{function}: unknown secret {other}"),
                    }
                }
                // A value the stack writes: the parameter resource of that name holds it.
                ("Sub", "PUBLIC_BASE_URL") => {
                    let parameter_name = resolver.resolve(&value);
                    let written = template["Resources"]
                        .as_mapping()
                        .unwrap()
                        .values()
                        .find(|r| {
                            r["Type"] == "AWS::SSM::Parameter"
                                && resolver.resolve(&r["Properties"]["Name"]) == parameter_name
                        })
                        .unwrap_or_else(|| panic!("{function}: no parameter {parameter_name}"));
                    resolver.resolve(&written["Properties"]["Value"])
                }
                other => panic!("{function}: {name} from {other:?}"),
            };
            vars.insert(var.to_string(), sample);
        }
        vars.insert(name, resolver.resolve(&value));
    }
    TemplateEnv {
        vars,
        read: RefCell::new(BTreeSet::new()),
    }
}

/// Every variable the template sets is read by the function's config: a misspelt name would
/// otherwise be ignored and its default used in production.
fn assert_all_read(function: &str, env: &TemplateEnv) {
    let read = env.read.borrow();
    for name in env.vars.keys() {
        let secret_name = name.ends_with(PARAMETER_SUFFIX);
        if name != "RUST_LOG" && !secret_name {
            assert!(
                read.contains(name),
                "{function}: {name} is set but never read"
            );
        }
    }
}

#[test]
fn each_function_loads_its_config_from_the_template_environment() {
    let template = template();

    let env = function_env(&template, "WebhookFunction");
    WebhookConfig::from_env(&env).expect("webhook config");
    assert_all_read("WebhookFunction", &env);

    let env = function_env(&template, "CreateSessionFunction");
    let checkout = CheckoutConfig::from_env(&env).expect("create-session config");
    assert_eq!(checkout.stripe.api_base, "https://api.stripe.com");
    assert_all_read("CreateSessionFunction", &env);

    let env = function_env(&template, "ReconcileFunction");
    let reconcile = ReconcileConfig::from_env(&env).expect("reconcile config");
    assert_eq!(reconcile.grace_secs, 600);
    ConsumersConfig::from_env(&env).expect("the consumers the reconciler re-drives");
    assert_all_read("ReconcileFunction", &env);

    let env = function_env(&template, "FulfillmentFunction");
    FulfillmentConfig::from_env(&env).expect("fulfillment config");
    ConfirmationConfig::from_env(&env).expect("confirmation email config");
    assert_all_read("FulfillmentFunction", &env);

    let env = function_env(&template, "RecoveryFunction");
    let config = RecoveryConfig::from_env(&env).expect("recovery config");
    assert!(
        config.public_base_url.starts_with("https://")
            && config.public_base_url.contains("execute-api"),
        "{}",
        config.public_base_url
    );
    assert_all_read("RecoveryFunction", &env);
}

#[test]
fn roles_grant_each_function_only_its_tables() {
    let template = template();
    let tables_of = |role: &str| -> BTreeSet<String> {
        let statements =
            &resource(&template, role)["Properties"]["Policies"][0]["PolicyDocument"]["Statement"];
        let mut out = BTreeSet::new();
        for statement in statements.as_sequence().unwrap() {
            // Indexes, named as `!Sub ${Table.Arn}/index/<name>` in a list.
            for item in statement["Resource"].as_sequence().into_iter().flatten() {
                if let Some((tag, arn)) = tagged(item)
                    && tag == "Sub"
                    && let Some(arn) = arn.as_str()
                    && arn.contains("/index/")
                {
                    out.insert(arn.to_string());
                }
            }
            let Some((tag, target)) = tagged(&statement["Resource"]) else {
                continue;
            };
            let Some(target) = target.as_str() else {
                continue;
            };
            if tag == "GetAtt"
                && (target.ends_with("Table.Arn") || target.ends_with("Table.StreamArn"))
            {
                out.insert(target.to_string());
            }
        }
        out
    };
    let set = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(tables_of("WebhookRole"), set(&["EventsTable.Arn"]));
    assert_eq!(tables_of("CreateSessionRole"), set(&["SessionsTable.Arn"]));
    assert_eq!(
        tables_of("FulfillmentRole"),
        set(&[
            "EventsTable.Arn",
            "EventsTable.StreamArn",
            "OrdersTable.Arn",
            "SessionsTable.Arn"
        ])
    );
    assert_eq!(
        tables_of("RecoveryRole"),
        set(&[
            "EventsTable.Arn",
            "EventsTable.StreamArn",
            "RecoveryTable.Arn"
        ])
    );
    assert_eq!(
        tables_of("ReconcileRole"),
        set(&[
            "EventsTable.Arn",
            "${EventsTable.Arn}/index/fulfillment-pending",
            "${EventsTable.Arn}/index/recovery-pending",
            "ReconcileTable.Arn",
            "OrdersTable.Arn",
            "SessionsTable.Arn",
            "RecoveryTable.Arn"
        ])
    );
    // The indexes it queries are the ones the consumers' pending marks key.
    for consumer in checkout_core::store::Consumer::ALL {
        assert!(
            tables_of("ReconcileRole").contains(&format!(
                "${{EventsTable.Arn}}/index/{}",
                consumer.pending_index()
            )),
            "{consumer}"
        );
    }
    // No wildcard resource or action anywhere (comments aside).
    let raw = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../infra/template.yaml"
    ))
    .unwrap();
    let policy_lines = raw
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter(|l| l.contains("Resource") || l.contains("Action") || l.contains("arn:"));
    for line in policy_lines {
        assert!(!line.contains('*'), "wildcard in: {line}");
    }
}
