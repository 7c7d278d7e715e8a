//! The SAM template and the code agree, so what runs locally (tables created from
//! `store::tables` specs) and what is deployed cannot drift: the tables' keys, indexes,
//! streams and TTLs, each stream's event filter, each function's environment, which must load
//! into that function's typed config and hold no secret value, each role's DynamoDB actions
//! per table and index (no wildcard), the reconciler's schedule and alarms, the optional
//! EventBridge rule to the webhook, and the optional stock table (`StockTracking`).

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use checkout_core::{
    access::AccessConfig,
    checkout::CheckoutConfig,
    config::Source,
    fulfillment::{self, ConfirmationConfig, FulfillmentConfig},
    metrics,
    reconcile::{self, ConsumersConfig, ReconcileConfig},
    recovery::{self, RecoveryConfig},
    secrets::PARAMETER_SUFFIX,
    stock::StockConfig,
    store::{
        Consumer,
        tables::{self, TableSpec},
    },
    subscriptions::{self, SubscriptionsConfig},
    webhook::{self, WebhookConfig},
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
    let specs: [(&str, &TableSpec); 9] = [
        ("EventsTable", &tables::EVENTS),
        ("SessionsTable", &tables::SESSIONS),
        ("OrdersTable", &tables::ORDERS),
        ("RecoveryTable", &tables::RECOVERY),
        ("ReconcileTable", &tables::RECONCILE),
        ("SubscriptionsTable", &tables::SUBSCRIPTIONS),
        ("AccessTable", &tables::ACCESS),
        ("RequestsTable", &tables::REQUESTS),
        ("StockTable", &tables::STOCK),
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
        let keys = 1 + usize::from(spec.sort_key.is_some());
        assert_eq!(p["KeySchema"].as_sequence().unwrap().len(), keys, "{name}");
        assert_eq!(
            p["KeySchema"][0]["AttributeName"], spec.partition_key,
            "{name}"
        );
        assert_eq!(p["KeySchema"][0]["KeyType"], "HASH", "{name}");
        if let Some(sort_key) = spec.sort_key {
            assert_eq!(p["KeySchema"][1]["AttributeName"], sort_key, "{name}");
            assert_eq!(p["KeySchema"][1]["KeyType"], "RANGE", "{name}");
        }
        // The table's keys and each index's keys, with their types, and nothing else.
        let mut expected: BTreeMap<&str, &str> = BTreeMap::from([(spec.partition_key, "S")]);
        if let Some(sort_key) = spec.sort_key {
            expected.insert(sort_key, "S");
        }
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
        ("SubscriptionsFunction", subscriptions::STREAM_EVENTS),
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

    /// `None` for `!Ref AWS::NoValue`, directly or as the branch an `!If` takes: the property
    /// is then left out.
    fn resolve_optional(&self, value: &Value) -> Option<String> {
        match tagged(value) {
            Some((tag, name)) if tag == "Ref" && name == "AWS::NoValue" => None,
            Some((tag, args)) if tag == "If" => {
                let branch = if self.condition(text(&args[0])) {
                    &args[1]
                } else {
                    &args[2]
                };
                self.resolve_optional(branch)
            }
            _ => Some(self.resolve(value)),
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
            "MERCHANT_API_KEY",
            "CUSTOMER_TOKEN_SECRET",
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
                        "UNSUBSCRIBE_SECRET" | "MERCHANT_API_KEY" | "CUSTOMER_TOKEN_SECRET" => {
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
                // The shop document, when the merchant names a parameter for it.
                ("If", "SHOP_POLICY") => {
                    include_str!("../../examples/shop-policy.json").to_string()
                }
                other => panic!("{function}: {name} from {other:?}"),
            };
            vars.insert(var.to_string(), sample);
        }
        if let Some(resolved) = resolver.resolve_optional(&value) {
            vars.insert(name, resolved);
        }
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
    assert!(
        checkout.callers.merchant_api_key.is_some()
            && checkout.callers.customer_token_secret.is_some(),
        "server calls and customer tokens are on in AWS"
    );
    assert_all_read("CreateSessionFunction", &env);

    let env = function_env(&template, "ReconcileFunction");
    let reconcile = ReconcileConfig::from_env(&env).expect("reconcile config");
    assert_eq!(reconcile.grace_secs, 600);
    // Fulfillment, its confirmation email and recovery, as their own functions load them.
    let consumers =
        ConsumersConfig::from_env(&env).expect("the consumers the reconciler re-drives");
    assert_eq!(reconcile.events_table.as_str(), "EventsTable");
    assert_eq!(reconcile.reconcile_table.as_str(), "ReconcileTable");
    assert_eq!(consumers.fulfillment.events_table.as_str(), "EventsTable");
    assert_eq!(consumers.recovery.events_table.as_str(), "EventsTable");
    assert_eq!(
        consumers.subscriptions.subscriptions_table.as_str(),
        "SubscriptionsTable"
    );
    assert_eq!(
        consumers.subscriptions.access.access_table.as_str(),
        "AccessTable"
    );
    assert_eq!(consumers.subscriptions.grace_secs, 3 * 86_400);
    assert!(consumers.confirmation.mail.is_some(), "confirmations sent");
    assert!(
        consumers.recovery.public_base_url.contains("execute-api"),
        "{}",
        consumers.recovery.public_base_url
    );
    assert_all_read("ReconcileFunction", &env);

    let env = function_env(&template, "FulfillmentFunction");
    FulfillmentConfig::from_env(&env).expect("fulfillment config");
    ConfirmationConfig::from_env(&env).expect("confirmation email config");
    AccessConfig::from_env(&env).expect("the default Entitle's table");
    assert_all_read("FulfillmentFunction", &env);

    let env = function_env(&template, "SubscriptionsFunction");
    let config = SubscriptionsConfig::from_env(&env).expect("subscriptions config");
    assert_eq!(
        config.grace_secs,
        3 * 86_400,
        "ACCESS_GRACE_DAYS defaults to 3"
    );
    AccessConfig::from_env(&env).expect("the default Entitle's table");
    assert_all_read("SubscriptionsFunction", &env);

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

/// The DynamoDB grants of a role's policy: each table, stream or index it names, as
/// `EventsTable.Arn`, `EventsTable.StreamArn` or `EventsTable.Arn/index/<name>`, with the
/// actions allowed on it. A statement naming a table grants only DynamoDB actions, and a
/// statement with a DynamoDB action names only tables, streams and indexes.
fn dynamodb_grants(template: &Value, role: &str) -> BTreeMap<String, BTreeSet<String>> {
    fn statements<'a>(value: &'a Value, out: &mut Vec<&'a Value>) {
        match tagged(value) {
            // `!If [condition, statement, statement or AWS::NoValue]`
            Some((tag, args)) if tag == "If" => {
                for branch in args.as_sequence().unwrap().iter().skip(1) {
                    statements(branch, out);
                }
            }
            None if value.is_mapping() => out.push(value),
            // `!Ref AWS::NoValue`
            Some(_) | None => {}
        }
    }
    fn resources(value: &Value, out: &mut Vec<String>) {
        match tagged(value) {
            Some((tag, args)) if tag == "If" => {
                for branch in args.as_sequence().unwrap().iter().skip(1) {
                    resources(branch, out);
                }
            }
            Some((tag, target)) if tag == "GetAtt" => out.push(text(target).to_string()),
            Some((tag, arn)) if tag == "Sub" => {
                let arn = text(arn);
                // `${EventsTable.Arn}/index/…` names a table's index; any other ARN stays.
                match arn.strip_prefix("${").and_then(|a| a.split_once('}')) {
                    Some((table, rest)) => out.push(format!("{table}{rest}")),
                    None => out.push(arn.to_string()),
                }
            }
            Some((tag, name)) => out.push(format!("!{tag} {}", text(name))),
            None => match value {
                Value::Sequence(items) => items.iter().for_each(|i| resources(i, out)),
                other => out.push(text(other).to_string()),
            },
        }
    }
    let is_table = |r: &str| {
        r.split_once('.').is_some_and(|(table, attribute)| {
            template["Resources"][table]["Type"] == "AWS::DynamoDB::Table"
                && (attribute == "Arn"
                    || attribute == "StreamArn"
                    || attribute.starts_with("Arn/index/"))
        })
    };
    let mut list = Vec::new();
    for policy in resource(template, role)["Properties"]["Policies"]
        .as_sequence()
        .unwrap()
    {
        for statement in policy["PolicyDocument"]["Statement"].as_sequence().unwrap() {
            statements(statement, &mut list);
        }
    }
    let mut grants: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for statement in list {
        assert_eq!(statement["Effect"], "Allow", "{role}: {statement:?}");
        let actions: Vec<&str> = match &statement["Action"] {
            Value::Sequence(items) => items.iter().map(text).collect(),
            one => vec![text(one)],
        };
        let mut named = Vec::new();
        resources(&statement["Resource"], &mut named);
        let dynamodb = actions.iter().any(|a| a.starts_with("dynamodb:"));
        for r in &named {
            assert_eq!(
                is_table(r),
                dynamodb,
                "{role}: a statement mixes DynamoDB and other actions or resources: {actions:?} on {r}"
            );
        }
        if dynamodb {
            assert!(
                actions.iter().all(|a| a.starts_with("dynamodb:")),
                "{role}: {actions:?}"
            );
            for r in named {
                grants
                    .entry(r)
                    .or_default()
                    .extend(actions.iter().map(|a| a.to_string()));
            }
        }
    }
    grants
}

fn grants(items: &[(&str, &[&str])]) -> BTreeMap<String, BTreeSet<String>> {
    items
        .iter()
        .map(|(r, actions)| {
            (
                r.to_string(),
                actions.iter().map(|a| format!("dynamodb:{a}")).collect(),
            )
        })
        .collect()
}

#[test]
fn roles_grant_each_function_only_its_tables() {
    let template = template();
    const STREAM: &[&str] = &[
        "DescribeStream",
        "GetRecords",
        "GetShardIterator",
        "ListStreams",
    ];
    assert_eq!(
        dynamodb_grants(&template, "WebhookRole"),
        grants(&[("EventsTable.Arn", &["PutItem"])])
    );
    // Stock (with StockTracking on): levels read in a batch, a reservation put and levels
    // updated in one transaction, a reservation read and moved on release or commit.
    const STOCK: &[&str] = &["BatchGetItem", "GetItem", "PutItem", "UpdateItem"];
    assert_eq!(
        dynamodb_grants(&template, "CreateSessionRole"),
        grants(&[
            ("SessionsTable.Arn", &["GetItem", "PutItem"]),
            ("RequestsTable.Arn", &["GetItem", "PutItem", "UpdateItem"]),
            ("StockTable.Arn", STOCK),
        ])
    );
    // The consumers record each event's outcome on its item, and nothing else of the table;
    // fulfillment's success page also reads a session's stored events.
    assert_eq!(
        dynamodb_grants(&template, "FulfillmentRole"),
        grants(&[
            ("EventsTable.Arn", &["GetItem", "UpdateItem"]),
            ("EventsTable.Arn/index/by-object", &["Query"]),
            ("EventsTable.StreamArn", STREAM),
            ("OrdersTable.Arn", &["GetItem", "UpdateItem"]),
            ("SessionsTable.Arn", &["GetItem"]),
            ("AccessTable.Arn", &["UpdateItem"]),
            ("StockTable.Arn", STOCK),
        ])
    );
    assert_eq!(
        dynamodb_grants(&template, "SubscriptionsRole"),
        grants(&[
            ("EventsTable.Arn", &["UpdateItem"]),
            ("EventsTable.StreamArn", STREAM),
            ("SubscriptionsTable.Arn", &["GetItem", "UpdateItem"]),
            ("AccessTable.Arn", &["UpdateItem"]),
        ])
    );
    const RECOVERY: &[&str] = &["DeleteItem", "GetItem", "PutItem", "UpdateItem"];
    assert_eq!(
        dynamodb_grants(&template, "RecoveryRole"),
        grants(&[
            ("EventsTable.Arn", &["UpdateItem"]),
            ("EventsTable.StreamArn", STREAM),
            ("RecoveryTable.Arn", RECOVERY),
            ("SessionsTable.Arn", &["GetItem"]),
        ])
    );
    // The reconciler: what both consumers do on a re-drive (no stream), the backfill's
    // conditional put, and a Query on each consumer's pending index (not on `by-object`,
    // which only the operator's `ops explain` reads).
    let pending: Vec<String> = Consumer::ALL
        .iter()
        .map(|c| format!("EventsTable.Arn/index/{}", c.pending_index()))
        .collect();
    for index in &pending {
        let name = index.rsplit('/').next().unwrap();
        assert!(
            tables::EVENTS.indexes.iter().any(|i| i.name == name),
            "{name} is an index of the events table"
        );
    }
    let mut expected = grants(&[
        ("EventsTable.Arn", &["GetItem", "PutItem", "UpdateItem"]),
        ("ReconcileTable.Arn", &["GetItem", "UpdateItem"]),
        ("OrdersTable.Arn", &["GetItem", "UpdateItem"]),
        ("SessionsTable.Arn", &["GetItem"]),
        ("RecoveryTable.Arn", RECOVERY),
        ("SubscriptionsTable.Arn", &["GetItem", "UpdateItem"]),
        ("AccessTable.Arn", &["UpdateItem"]),
        ("StockTable.Arn", STOCK),
    ]);
    for index in pending {
        expected.insert(index, BTreeSet::from(["dynamodb:Query".to_string()]));
    }
    assert_eq!(dynamodb_grants(&template, "ReconcileRole"), expected);

    // Each function's role names exactly the tables its environment names.
    for (function, role) in [
        ("WebhookFunction", "WebhookRole"),
        ("CreateSessionFunction", "CreateSessionRole"),
        ("FulfillmentFunction", "FulfillmentRole"),
        ("RecoveryFunction", "RecoveryRole"),
        ("ReconcileFunction", "ReconcileRole"),
        ("SubscriptionsFunction", "SubscriptionsRole"),
    ] {
        let resolver = Resolver {
            template: &template,
        };
        let in_env: BTreeSet<String> = resolver
            .environment(function)
            .into_iter()
            .filter(|(name, _)| name.ends_with("_TABLE"))
            .map(|(name, value)| {
                let (mut tag, mut table) = tagged(&value).expect("!Ref to a table");
                // `!If [condition, !Ref table, !Ref AWS::NoValue]`: an optional table.
                if tag == "If" {
                    let no_value = tagged(&table[2]).expect("!Ref AWS::NoValue");
                    assert_eq!(
                        (no_value.0.as_str(), text(no_value.1)),
                        ("Ref", "AWS::NoValue"),
                        "{function}: {name}"
                    );
                    (tag, table) = tagged(&table[1]).expect("!Ref to a table");
                }
                assert_eq!(tag, "Ref", "{function}: {name}");
                assert_eq!(
                    resource(&template, text(table))["Type"],
                    "AWS::DynamoDB::Table",
                    "{function}: {name}"
                );
                text(table).to_string()
            })
            .collect();
        let in_role: BTreeSet<String> = dynamodb_grants(&template, role)
            .into_keys()
            .map(|r| r.split('.').next().unwrap().to_string())
            .collect();
        assert_eq!(
            in_env, in_role,
            "{function}: tables in its environment and its role"
        );
    }

    // Only the functions that reserve, release and commit stock may write it: create-session,
    // fulfillment, and the reconciler when it re-drives fulfillment's events.
    let writes =
        ["PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem"].map(|a| format!("dynamodb:{a}"));
    let writers: BTreeSet<&str> = template["Resources"]
        .as_mapping()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::IAM::Role")
        .map(|(name, _)| text(name))
        .filter(|role| {
            dynamodb_grants(&template, role)
                .get("StockTable.Arn")
                .is_some_and(|actions| writes.iter().any(|w| actions.contains(w)))
        })
        .collect();
    assert_eq!(
        writers,
        BTreeSet::from(["CreateSessionRole", "FulfillmentRole", "ReconcileRole"]),
        "the roles that may write the stock table"
    );
}

/// With `StockTracking` at `value`: the template with that as the parameter's default.
fn with_stock_tracking(value: &str) -> Value {
    let mut template = template();
    template["Parameters"]["StockTracking"]["Default"] = value.into();
    template
}

#[test]
fn stock_is_tracked_by_create_session_fulfillment_and_its_redrive_only_when_enabled() {
    let template = template();
    assert_eq!(
        template["Parameters"]["StockTracking"]["Default"], "Disabled",
        "off unless the merchant turns it on"
    );
    // Off: no function is told of the table, and no role may touch it.
    for function in [
        "WebhookFunction",
        "CreateSessionFunction",
        "FulfillmentFunction",
        "RecoveryFunction",
        "ReconcileFunction",
        "SubscriptionsFunction",
    ] {
        let env = function_env(&template, function);
        assert!(
            StockConfig::from_env(&env).unwrap().table.is_none(),
            "{function}: stock tracked by default"
        );
    }
    // Each stock statement is conditional on the same condition as the variable.
    for role in ["CreateSessionRole", "FulfillmentRole", "ReconcileRole"] {
        let statements =
            resource(&template, role)["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
                .as_sequence()
                .unwrap();
        let stock: Vec<&Value> = statements
            .iter()
            .filter(|s| {
                let mut named = Vec::new();
                strings(s, &mut named);
                named.contains(&"StockTable.Arn")
            })
            .collect();
        assert_eq!(stock.len(), 1, "{role}");
        let (tag, args) = tagged(stock[0]).expect("!If StockEnabled");
        assert_eq!(
            (tag.as_str(), &args[0]),
            ("If", &Value::from("StockEnabled"))
        );
        let no_value = tagged(&args[2]).unwrap();
        assert_eq!(
            (no_value.0.as_str(), text(no_value.1)),
            ("Ref", "AWS::NoValue")
        );
    }

    // On: create-session and fulfillment load the table name, and read all they are given.
    let template = with_stock_tracking("Enabled");
    let env = function_env(&template, "CreateSessionFunction");
    CheckoutConfig::from_env(&env).expect("create-session config");
    let stock = StockConfig::from_env(&env).expect("stock config");
    assert_eq!(stock.table.unwrap().as_str(), "StockTable");
    assert_all_read("CreateSessionFunction", &env);

    let env = function_env(&template, "FulfillmentFunction");
    FulfillmentConfig::from_env(&env).expect("fulfillment config");
    ConfirmationConfig::from_env(&env).expect("confirmation email config");
    AccessConfig::from_env(&env).expect("the default Entitle's table");
    let stock = StockConfig::from_env(&env).expect("stock config");
    assert_eq!(stock.table.unwrap().as_str(), "StockTable");
    assert_all_read("FulfillmentFunction", &env);

    // The reconciler re-drives fulfillment's unfinished events (a completion, an expiry):
    // with the same stock, or a re-driven expiry would never return its units.
    let env = function_env(&template, "ReconcileFunction");
    ReconcileConfig::from_env(&env).expect("reconcile config");
    ConsumersConfig::from_env(&env).expect("the consumers it re-drives");
    let stock = StockConfig::from_env(&env).expect("stock config");
    assert_eq!(stock.table.unwrap().as_str(), "StockTable");
    assert_all_read("ReconcileFunction", &env);

    for function in [
        "WebhookFunction",
        "RecoveryFunction",
        "SubscriptionsFunction",
    ] {
        let env = function_env(&template, function);
        assert!(env.get("STOCK_TABLE").is_none(), "{function}");
    }

    let output = &template["Outputs"]["StockTableName"]["Value"];
    let (tag, table) = tagged(output).expect("!Ref StockTable");
    assert_eq!((tag.as_str(), text(table)), ("Ref", "StockTable"));
}

/// Every string under a statement's Action and Resource, through lists and functions.
fn strings<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::String(s) => out.push(s),
        Value::Sequence(items) => items.iter().for_each(|i| strings(i, out)),
        Value::Mapping(m) => m.values().for_each(|v| strings(v, out)),
        Value::Tagged(t) => strings(&t.value, out),
        _ => {}
    }
}

#[test]
fn no_policy_has_a_wildcard() {
    let template = template();
    let mut roles = 0;
    for (name, r) in template["Resources"].as_mapping().unwrap() {
        if r["Type"] != "AWS::IAM::Role" {
            continue;
        }
        roles += 1;
        for policy in r["Properties"]["Policies"].as_sequence().unwrap() {
            let mut found = Vec::new();
            for statement in policy["PolicyDocument"]["Statement"].as_sequence().unwrap() {
                let mut statement = statement;
                // `!If [condition, statement, AWS::NoValue]`: the statement.
                if let Some((tag, args)) = tagged(statement)
                    && tag == "If"
                {
                    statement = &args[1];
                }
                for key in ["NotAction", "NotResource"] {
                    assert!(statement.get(key).is_none(), "{name:?}: {key}");
                }
                strings(&statement["Action"], &mut found);
                strings(&statement["Resource"], &mut found);
            }
            assert!(!found.is_empty(), "{name:?}: no statements read");
            for s in found {
                assert!(!s.contains('*'), "{name:?}: wildcard in {s}");
            }
        }
    }
    assert_eq!(roles, 6, "one role per function");
    // And none in a line of policy text anywhere else (comments aside).
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

/// `rate(N minutes)` in seconds.
fn rate_secs(expression: &str) -> i64 {
    let minutes = expression
        .strip_prefix("rate(")
        .and_then(|r| r.strip_suffix(" minutes)"))
        .unwrap_or_else(|| panic!("rate(N minutes): {expression}"));
    minutes.parse::<i64>().expect("a number of minutes") * 60
}

fn timeout(template: &Value, function: &str) -> i64 {
    resource(template, function)["Properties"]["Timeout"]
        .as_i64()
        .unwrap_or_else(|| panic!("{function}: a Timeout"))
}

#[test]
fn the_reconciler_runs_every_few_minutes_and_a_pass_fits_the_interval() {
    let template = template();
    let events = resource(&template, "ReconcileFunction")["Properties"]["Events"]
        .as_mapping()
        .unwrap();
    assert_eq!(events.len(), 1, "the schedule is its only trigger");
    let schedule = events.values().next().unwrap();
    assert_eq!(schedule["Type"], "ScheduleV2");
    let p = &schedule["Properties"];
    let interval = rate_secs(text(&p["ScheduleExpression"]));
    assert!(
        (120..=900).contains(&interval),
        "every few minutes: {interval} s"
    );
    // A missed pass is not retried (the next one does its work), and passes start on time.
    assert_eq!(p["RetryPolicy"]["MaximumRetryAttempts"], 0);
    assert_eq!(p["FlexibleTimeWindow"]["Mode"], "OFF");
    // Not the logical id: two stacks in one account and region would clash.
    assert_eq!(p["OmitName"], true);

    // A pass ends before the next one starts, and has room for a few steps.
    let pass = timeout(&template, "ReconcileFunction");
    assert!(
        pass <= interval,
        "timeout {pass} s over the {interval} s interval"
    );
    assert!(
        pass >= 3 * reconcile::STEP_TIME_BUDGET_SECS,
        "timeout {pass} s fits few steps"
    );

    // The consumers only start a record with its time budget left: several fit a batch.
    for (function, budget) in [
        ("FulfillmentFunction", fulfillment::RECORD_TIME_BUDGET_SECS),
        ("RecoveryFunction", recovery::RECORD_TIME_BUDGET_SECS),
        (
            "SubscriptionsFunction",
            subscriptions::RECORD_TIME_BUDGET_SECS,
        ),
    ] {
        let t = timeout(&template, function);
        assert!(
            t >= 3 * budget,
            "{function}: timeout {t} s, {budget} s a record"
        );
    }

    // Built like the other functions (the Makefile's FUNCTIONS, cargo-lambda), one per crate.
    let makefile =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Makefile")).unwrap();
    let listed: BTreeSet<&str> = makefile
        .lines()
        .find_map(|l| l.strip_prefix("FUNCTIONS := "))
        .expect("FUNCTIONS in the Makefile")
        .split_whitespace()
        .collect();
    let mut built = BTreeSet::new();
    let mut groups = BTreeSet::new();
    for r in template["Resources"].as_mapping().unwrap().values() {
        if r["Type"] != "AWS::Serverless::Function" {
            continue;
        }
        assert_eq!(r["Metadata"]["BuildMethod"], "rust-cargolambda");
        let code = text(&r["Properties"]["CodeUri"]);
        built.insert(
            code.strip_prefix("../functions/")
                .expect("a function crate"),
        );
        for global in ["Runtime", "Architectures", "MemorySize"] {
            assert!(
                r["Properties"].get(global).is_none(),
                "{code}: {global} from Globals"
            );
        }
        // Its own log group, the only one its role may write to.
        let (tag, group) = tagged(&r["Properties"]["LoggingConfig"]["LogGroup"]).unwrap();
        assert_eq!(tag, "Ref", "{code}: its own log group");
        let group = text(group);
        assert_eq!(resource(&template, group)["Type"], "AWS::Logs::LogGroup");
        assert!(
            groups.insert(group),
            "{code}: {group} is another function's"
        );
        let (tag, role) = tagged(&r["Properties"]["Role"]).unwrap();
        assert_eq!(tag, "GetAtt", "{code}: its own role");
        let role = text(role).strip_suffix(".Arn").unwrap();
        let mut logs = Vec::new();
        for policy in resource(&template, role)["Properties"]["Policies"]
            .as_sequence()
            .unwrap()
        {
            for statement in policy["PolicyDocument"]["Statement"].as_sequence().unwrap() {
                let mut actions = Vec::new();
                strings(&statement["Action"], &mut actions);
                if actions.iter().any(|a| a.starts_with("logs:")) {
                    let mut named = Vec::new();
                    strings(&statement["Resource"], &mut named);
                    logs.extend(named);
                }
            }
        }
        assert_eq!(
            logs,
            [format!("{group}.Arn")],
            "{role} writes to {group} only"
        );
    }
    let crates: BTreeSet<String> =
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../functions"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
    assert_eq!(built, crates.iter().map(String::as_str).collect());
    assert_eq!(
        listed, built,
        "the Makefile's FUNCTIONS and the template's functions"
    );
    assert!(
        template["Outputs"]
            .as_mapping()
            .unwrap()
            .values()
            .any(|o| tagged(&o["Value"])
                .is_some_and(|(tag, v)| tag == "Ref" && v == "ReconcileFunction")),
        "an output names the reconcile function"
    );
}

#[test]
fn each_consumer_alarms_on_events_unresolved_for_an_hour_even_without_data() {
    let template = template();
    let schedule = &resource(&template, "ReconcileFunction")["Properties"]["Events"]
        .as_mapping()
        .unwrap()
        .values()
        .next()
        .unwrap()["Properties"];
    let interval = rate_secs(text(&schedule["ScheduleExpression"]));
    let alarms: BTreeMap<&str, &Value> = template["Resources"]
        .as_mapping()
        .unwrap()
        .values()
        .filter(|r| {
            r["Type"] == "AWS::CloudWatch::Alarm"
                && r["Properties"]["MetricName"] == "EventsUnresolvedOverAnHour"
        })
        .map(|r| {
            let p = &r["Properties"];
            let dimensions = p["Dimensions"].as_sequence().unwrap();
            assert_eq!(dimensions.len(), 1);
            assert_eq!(dimensions[0]["Name"], "Consumer");
            (text(&dimensions[0]["Value"]), p)
        })
        .collect();
    assert_eq!(
        alarms.keys().copied().collect::<BTreeSet<_>>(),
        Consumer::ALL.iter().map(|c| c.as_str()).collect(),
        "one alarm per consumer"
    );
    for (consumer, p) in alarms {
        assert_eq!(p["Namespace"], metrics::NAMESPACE, "{consumer}");
        assert_eq!(p["Statistic"], "Sum", "{consumer}");
        // Each period holds a pass, so missing data means the reconciler did not run.
        let period = p["Period"].as_i64().unwrap();
        assert!(period >= interval, "{consumer}: period {period} s");
        assert_eq!(p["EvaluationPeriods"], 1, "{consumer}");
        assert_eq!(p["Threshold"], 0, "{consumer}");
        assert_eq!(
            p["ComparisonOperator"], "GreaterThanThreshold",
            "{consumer}"
        );
        assert_eq!(p["TreatMissingData"], "breaching", "{consumer}");
        let (tag, args) = tagged(&p["AlarmActions"]).expect("!If HasAlarmEmail");
        assert_eq!(
            (tag.as_str(), &args[0]),
            ("If", &Value::from("HasAlarmEmail"))
        );
        let topic = tagged(&args[1][0]).expect("!Ref AlarmTopic");
        assert_eq!((topic.0.as_str(), text(topic.1)), ("Ref", "AlarmTopic"));
        let description = text(&p["AlarmDescription"]);
        for command in ["ops explain", "ops redrive"] {
            assert!(description.contains(command), "{consumer}: {command}");
        }
    }
}

#[test]
fn stripe_events_from_an_eventbridge_bus_reach_the_webhook_when_one_is_named() {
    let template = template();
    let resolver = Resolver {
        template: &template,
    };
    assert!(
        !resolver.condition("HasStripeEventBus"),
        "no bus by default: the webhook endpoint only"
    );
    let rule = resource(&template, "StripeEventsRule");
    assert_eq!(rule["Type"], "AWS::Events::Rule");
    assert_eq!(rule["Condition"], "HasStripeEventBus");
    let p = &rule["Properties"];
    let (tag, bus) = tagged(&p["EventBusName"]).unwrap();
    assert_eq!((tag.as_str(), text(bus)), ("Ref", "StripeEventBusName"));
    let pattern = &p["EventPattern"];
    assert_eq!(
        pattern.as_mapping().unwrap().len(),
        2,
        "source and detail-type"
    );
    let prefixes = |key: &str| -> Vec<&str> {
        pattern[key]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|m| text(&m["prefix"]))
            .collect()
    };
    assert_eq!(prefixes("source"), [webhook::EVENT_BRIDGE_SOURCE_PREFIX]);
    // Every type a consumer acts on passes, and each prefix lets some of them through.
    let handled: BTreeSet<&str> = Consumer::ALL
        .iter()
        .flat_map(|c| c.events())
        .map(|t| t.as_str())
        .collect();
    let detail_types = prefixes("detail-type");
    for kind in &handled {
        assert!(
            detail_types.iter().any(|p| kind.starts_with(p)),
            "{kind} filtered out"
        );
    }
    for prefix in &detail_types {
        assert!(
            handled.iter().any(|k| k.starts_with(prefix)),
            "{prefix} lets through nothing a consumer acts on"
        );
    }
    let targets = p["Targets"].as_sequence().unwrap();
    assert_eq!(targets.len(), 1);
    let (tag, arn) = tagged(&targets[0]["Arn"]).unwrap();
    assert_eq!((tag.as_str(), text(arn)), ("GetAtt", "WebhookFunction.Arn"));

    let permission = resource(&template, "StripeEventsPermission");
    assert_eq!(permission["Type"], "AWS::Lambda::Permission");
    assert_eq!(permission["Condition"], "HasStripeEventBus");
    let p = &permission["Properties"];
    assert_eq!(p["Action"], "lambda:InvokeFunction");
    assert_eq!(p["Principal"], "events.amazonaws.com");
    let (tag, function) = tagged(&p["FunctionName"]).unwrap();
    assert_eq!((tag.as_str(), text(function)), ("Ref", "WebhookFunction"));
    let (tag, source) = tagged(&p["SourceArn"]).unwrap();
    assert_eq!(
        (tag.as_str(), text(source)),
        ("GetAtt", "StripeEventsRule.Arn")
    );
}
