//! The six functions: how each is deployed (its template resource, the environment Lambda
//! and the template give it) and the one warm invocation the bench repeats, with the check
//! that its answer is the expected one, so an error path is never measured by accident.

use std::collections::BTreeMap;
use std::path::Path;

use checkout_core::config::Secret;
use checkout_core::store::tables::{self, TableSpec};
use serde_json::{Value, json};

use crate::events::{
    api_gateway_v2, scheduled_event, session_object, stream_batch, stripe_event,
    subscriptions_event,
};
use crate::template::{Deploy, Template};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Webhook,
    CreateSession,
    Fulfillment,
    Recovery,
    Reconcile,
    Subscriptions,
}

pub struct Function {
    pub kind: Kind,
    /// The cargo package, and its binary.
    pub name: &'static str,
    /// The template's function resource.
    pub resource: &'static str,
    /// What the warm invocation is, for the table.
    pub invocation: &'static str,
    /// The invocation calls Stripe: `STRIPE_API_BASE` points at the in-process simulator.
    pub uses_stripe: bool,
    /// A WARN line the invocation is expected to log (a 4xx answer logs one).
    pub expected_warning: Option<&'static str>,
}

pub const ALL: [Function; 6] = [
    Function {
        kind: Kind::Webhook,
        name: "webhook",
        resource: "WebhookFunction",
        invocation: "POST /webhooks/stripe, signed checkout.session.completed, new id → 200 stored",
        uses_stripe: false,
        expected_warning: None,
    },
    Function {
        kind: Kind::CreateSession,
        name: "create-session",
        resource: "CreateSessionFunction",
        invocation: "POST /checkout/sessions, 1 × price_mug (server call) → Stripe simulator → 201",
        uses_stripe: true,
        expected_warning: None,
    },
    Function {
        kind: Kind::Fulfillment,
        name: "fulfillment",
        resource: "FulfillmentFunction",
        invocation: "GET /checkout/complete?session_id=<unknown> → 2 GetItem + 1 Query → 404 not_found",
        uses_stripe: false,
        expected_warning: Some("\"code\":\"not_found\""),
    },
    Function {
        kind: Kind::Recovery,
        name: "recovery",
        resource: "RecoveryFunction",
        invocation: "GET /recovery/unsubscribe?token=<valid> → 1 UpdateItem → 200 page",
        uses_stripe: false,
        expected_warning: None,
    },
    Function {
        kind: Kind::Reconcile,
        name: "reconcile",
        resource: "ReconcileFunction",
        invocation: "scheduled event → one pass over empty tables (Stripe simulator event list)",
        uses_stripe: true,
        expected_warning: None,
    },
    Function {
        kind: Kind::Subscriptions,
        name: "subscriptions",
        resource: "SubscriptionsFunction",
        invocation: "stream batch, 1 INSERT checkout.session.completed (payment mode) → skipped, outcome recorded",
        uses_stripe: false,
        expected_warning: None,
    },
];

/// The bench's secrets, by variable: what SSM holds (SSM mode) or the environment (env mode).
pub const SECRETS: [(&str, &str); 6] = [
    (
        "STRIPE_WEBHOOK_SECRET",
        "whsec_bench_lambda_emulator_endpoint_secret",
    ),
    ("STRIPE_SECRET_KEY", "sk_test_bench_lambda_emulator"),
    (
        "UNSUBSCRIBE_SECRET",
        "bench-lambda-unsubscribe-secret-at-least-32-chars",
    ),
    (
        "MERCHANT_API_KEY",
        "mk_bench_lambda_merchant_key_at_least_32_characters",
    ),
    (
        "CUSTOMER_TOKEN_SECRET",
        "bench-lambda-customer-token-secret-32-characters",
    ),
    (
        "PUBLIC_BASE_URL",
        "https://abc123.execute-api.us-east-1.amazonaws.com",
    ),
];

fn secret(var: &str) -> &'static str {
    SECRETS
        .iter()
        .find(|(v, _)| *v == var)
        .map(|(_, value)| *value)
        .unwrap_or_default()
}

/// The values `sam deploy` would be given: the template's five required parameters, and the
/// secret parameters named `/bench/<var>`.
fn deploy_parameters() -> BTreeMap<&'static str, String> {
    [
        (
            "CheckoutSuccessUrl",
            "https://shop.example/thanks?session_id={CHECKOUT_SESSION_ID}",
        ),
        ("MailFrom", "orders@shop.example"),
        ("MailIdentity", "shop.example"),
        ("MerchantName", "Demo Shop"),
        (
            "MerchantPostalAddress",
            "1 rue de la Paix, 75002 Paris, France",
        ),
        ("StripeSecretKeyParameter", "/bench/stripe_secret_key"),
        (
            "StripeWebhookSecretParameter",
            "/bench/stripe_webhook_secret",
        ),
        ("UnsubscribeSecretParameter", "/bench/unsubscribe_secret"),
        ("MerchantApiKeyParameter", "/bench/merchant_api_key"),
        (
            "CustomerTokenSecretParameter",
            "/bench/customer_token_secret",
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.to_string()))
    .collect()
}

/// The stack's tables, by the variable that names them.
fn table_spec(var: &str) -> Option<&'static TableSpec> {
    Some(match var {
        "EVENTS_TABLE" => &tables::EVENTS,
        "SESSIONS_TABLE" => &tables::SESSIONS,
        "ORDERS_TABLE" => &tables::ORDERS,
        "RECOVERY_TABLE" => &tables::RECOVERY,
        "RECONCILE_TABLE" => &tables::RECONCILE,
        "SUBSCRIPTIONS_TABLE" => &tables::SUBSCRIPTIONS,
        "ACCESS_TABLE" => &tables::ACCESS,
        "REQUESTS_TABLE" => &tables::REQUESTS,
        "STOCK_TABLE" => &tables::STOCK,
        _ => return None,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secrets {
    /// `<VAR>_PARAMETER` names a SecureString; one `GetParameters` at init, as in AWS.
    Ssm,
    /// The values themselves in the environment (the local stack's way).
    Env,
}

/// One row's process environment and what its backend must hold.
pub struct Deployed {
    pub env: BTreeMap<String, String>,
    /// SSM parameter name → value (empty in env mode).
    pub parameters: BTreeMap<String, String>,
    /// Table name → spec, for a backend that must create them (moto).
    pub tables: Vec<(String, &'static TableSpec)>,
    pub timeout_secs: u64,
    pub memory_mb: u64,
}

pub struct Endpoints<'a> {
    /// The Runtime API, `host:port` as Lambda gives it (no scheme).
    pub runtime_api: String,
    pub aws: &'a str,
    pub stripe: Option<&'a str>,
}

impl Function {
    #[must_use]
    pub fn lambda_name(&self) -> String {
        format!("bench-{}", self.name)
    }

    #[must_use]
    pub fn arn(&self) -> String {
        format!(
            "arn:aws:lambda:us-east-1:123456789012:function:{}",
            self.lambda_name()
        )
    }

    /// The environment Lambda gives the process: its own variables, then the template's
    /// (with this row's table names), then the bench's endpoints.
    ///
    /// # Errors
    /// The template does not resolve for this function.
    pub fn deploy(
        &self,
        template: &Template,
        row: &str,
        secrets: Secrets,
        endpoints: &Endpoints<'_>,
        task_root: &Path,
    ) -> Result<Deployed, String> {
        let parameters = deploy_parameters();
        let physical = |logical: &str| format!("bench-{row}-{logical}");
        let config = template.function(
            self.resource,
            &Deploy {
                stack: "bench",
                parameters: &parameters,
                physical_name: &physical,
            },
        )?;
        let root = task_root.display().to_string();
        let mut env: BTreeMap<String, String> = [
            ("AWS_LAMBDA_RUNTIME_API", endpoints.runtime_api.clone()),
            ("AWS_LAMBDA_FUNCTION_NAME", self.lambda_name()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
            (
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                config.memory_mb.to_string(),
            ),
            (
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/aws/lambda/{}", self.lambda_name()),
            ),
            (
                "AWS_LAMBDA_LOG_STREAM_NAME",
                format!("2026/01/01/[$LATEST]{:032x}", std::process::id()),
            ),
            ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_DEFAULT_REGION", "us-east-1".into()),
            // The role's temporary credentials; moto and the stub accept any.
            ("AWS_ACCESS_KEY_ID", "ASIABENCHLAMBDAEMULATOR".into()),
            (
                "AWS_SECRET_ACCESS_KEY",
                "bench/lambda/emulator/secret/access/key".into(),
            ),
            (
                "AWS_SESSION_TOKEN",
                "bench-lambda-emulator-session-token".into(),
            ),
            ("AWS_ENDPOINT_URL", endpoints.aws.to_string()),
            ("_HANDLER", "bootstrap".into()),
            ("LAMBDA_TASK_ROOT", root.clone()),
            ("LAMBDA_RUNTIME_DIR", root),
            ("LANG", "en_US.UTF-8".into()),
            ("TZ", ":UTC".into()),
            ("PATH", "/usr/local/bin:/usr/bin/:/bin:/opt/bin".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        if config.json_logs {
            // What Lambda sets for `LogFormat: JSON` (application log level INFO by default).
            env.insert("AWS_LAMBDA_LOG_FORMAT".into(), "JSON".into());
            env.insert("AWS_LAMBDA_LOG_LEVEL".into(), "INFO".into());
        }
        let mut ssm = BTreeMap::new();
        let mut table_list = Vec::new();
        for (var, value) in config.env {
            if let Some(spec) = table_spec(&var) {
                table_list.push((value.clone(), spec));
            }
            let secret_var = var.strip_suffix(checkout_core::secrets::PARAMETER_SUFFIX);
            match (secret_var.map(secret), secrets) {
                (Some(""), _) | (None, _) => {
                    env.insert(var, value);
                }
                (Some(secret_value), Secrets::Ssm) => {
                    ssm.insert(value.clone(), secret_value.to_string());
                    env.insert(var, value);
                }
                (Some(secret_value), Secrets::Env) => {
                    let plain = secret_var.unwrap_or_default().to_string();
                    env.insert(plain, secret_value.to_string());
                }
            }
        }
        if let Some(stripe) = endpoints.stripe {
            // Not a template variable: Stripe's own URL is the default in AWS.
            env.insert("STRIPE_API_BASE".into(), stripe.to_string());
        }
        Ok(Deployed {
            env,
            parameters: ssm,
            tables: table_list,
            timeout_secs: config.timeout_secs,
            memory_mb: config.memory_mb,
        })
    }

    /// The `i`-th event (0 is the cold one). `row` keeps ids apart between rows.
    ///
    /// # Errors
    /// Only if a fixture cannot be encoded.
    pub fn payload(&self, i: usize, row: &str, now: i64) -> Result<Vec<u8>, String> {
        let event = match self.kind {
            Kind::Webhook => {
                let body = stripe_event(
                    &format!("evt_1Bench{row}x{i:06}"),
                    &session_object(&format!("cs_test_bench{row}x{i:06}"), now),
                    now,
                );
                let signature = checkout_core::webhook::sign(
                    &Secret::new(secret("STRIPE_WEBHOOK_SECRET")),
                    now,
                    body.as_bytes(),
                );
                api_gateway_v2(
                    "POST",
                    "/webhooks/stripe",
                    "",
                    &[
                        ("content-type", "application/json; charset=utf-8"),
                        ("stripe-signature", &signature),
                        (
                            "user-agent",
                            "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
                        ),
                    ],
                    Some(&body),
                )
            }
            Kind::CreateSession => api_gateway_v2(
                "POST",
                "/checkout/sessions",
                "",
                &[
                    ("content-type", "application/json"),
                    (
                        "authorization",
                        &format!("Bearer {}", secret("MERCHANT_API_KEY")),
                    ),
                ],
                Some(r#"{"line_items":[{"price":"price_mug","quantity":1}],"mode":"payment"}"#),
            ),
            Kind::Fulfillment => api_gateway_v2(
                "GET",
                "/checkout/complete",
                &format!("session_id=cs_test_bench{row}unknown{i:06}"),
                &[("accept", "application/json")],
                None,
            ),
            Kind::Recovery => {
                let address: checkout_core::mail::EmailAddress = format!("jenny+{i}@example.com")
                    .parse()
                    .map_err(|e| format!("{e:?}"))?;
                let token = checkout_core::recovery::unsubscribe_token(
                    &Secret::new(secret("UNSUBSCRIBE_SECRET")),
                    &address.hashed(),
                );
                api_gateway_v2(
                    "GET",
                    "/recovery/unsubscribe",
                    &format!("token={token}"),
                    &[("accept", "text/html")],
                    None,
                )
            }
            Kind::Reconcile => scheduled_event(now),
            Kind::Subscriptions => {
                let record = subscriptions_event(row, now)?;
                stream_batch(&record)?
            }
        };
        serde_json::to_vec(&event).map_err(|e| e.to_string())
    }

    /// Whether the function's answer is the one this invocation must get.
    ///
    /// # Errors
    /// What differs.
    pub fn check(&self, answer: &[u8]) -> Result<(), String> {
        let value: Value =
            serde_json::from_slice(answer).map_err(|e| format!("answer is not JSON: {e}"))?;
        match self.kind {
            Kind::Webhook => {
                let body = http_answer(&value, 200)?;
                let body: Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
                expect(
                    body["duplicate"] == json!(false)
                        && body["event_id"]
                            .as_str()
                            .is_some_and(|id| id.starts_with("evt_1Bench"))
                        && body.get("ignored").is_none(),
                    &body,
                )
            }
            Kind::CreateSession => {
                let body = http_answer(&value, 201)?;
                let body: Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
                expect(
                    body["id"].as_str().is_some_and(|id| id.starts_with("cs_"))
                        && body["url"].as_str().is_some_and(|u| u.starts_with("http")),
                    &body,
                )
            }
            Kind::Fulfillment => {
                let body = http_answer(&value, 404)?;
                let body: Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
                expect(body["error"]["code"] == "not_found", &body)
            }
            Kind::Recovery => {
                let body = http_answer(&value, 200)?;
                let html = value["headers"]["content-type"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("text/html"));
                expect(html && body.contains("unsubscribed"), &json!(body))
            }
            Kind::Reconcile => {
                let consumers = value["consumers"].as_object();
                expect(
                    value["listed"] == 0
                        && value["out_of_time"] == false
                        && value.get("backfill_error").is_none()
                        && consumers.is_some_and(|c| {
                            ["fulfillment", "recovery", "subscriptions"]
                                .iter()
                                .all(|k| c.contains_key(*k))
                        }),
                    &value,
                )
            }
            Kind::Subscriptions => expect(value == json!({"batchItemFailures": []}), &value),
        }
    }
}

fn expect(ok: bool, got: &Value) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(format!(
            "unexpected answer: {}",
            crate::process::truncate(&got.to_string(), 600)
        ))
    }
}

/// The body of an API Gateway (v2) answer with `status`.
fn http_answer(value: &Value, status: u64) -> Result<String, String> {
    let got = value["statusCode"].as_u64();
    let body = value["body"].as_str().unwrap_or_default().to_string();
    if value["isBase64Encoded"] == true {
        return Err(format!("a base64 body was not expected: {value}"));
    }
    if got != Some(status) {
        return Err(format!(
            "status {got:?}, expected {status}: {}",
            crate::process::truncate(&body, 600)
        ));
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template() -> Template {
        Template::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml")).unwrap()
    }

    fn endpoints() -> Endpoints<'static> {
        Endpoints {
            runtime_api: "127.0.0.1:9001".into(),
            aws: "http://127.0.0.1:1",
            stripe: None,
        }
    }

    #[test]
    fn ssm_mode_names_parameters_and_env_mode_passes_values() {
        let webhook = &ALL[0];
        let ssm = webhook
            .deploy(
                &template(),
                "r1",
                Secrets::Ssm,
                &endpoints(),
                Path::new("/tmp"),
            )
            .unwrap();
        assert_eq!(
            ssm.env["STRIPE_WEBHOOK_SECRET_PARAMETER"],
            "/bench/stripe_webhook_secret"
        );
        assert!(!ssm.env.contains_key("STRIPE_WEBHOOK_SECRET"));
        assert_eq!(
            ssm.parameters["/bench/stripe_webhook_secret"],
            secret("STRIPE_WEBHOOK_SECRET")
        );
        assert_eq!(ssm.env["EVENTS_TABLE"], "bench-r1-EventsTable");
        assert_eq!(ssm.tables.len(), 1);
        let env = webhook
            .deploy(
                &template(),
                "r1",
                Secrets::Env,
                &endpoints(),
                Path::new("/tmp"),
            )
            .unwrap();
        assert_eq!(
            env.env["STRIPE_WEBHOOK_SECRET"],
            secret("STRIPE_WEBHOOK_SECRET")
        );
        assert!(env.parameters.is_empty());
    }

    #[test]
    fn every_function_deploys_and_its_payload_encodes() {
        for function in &ALL {
            let deployed = function
                .deploy(
                    &template(),
                    "r1",
                    Secrets::Ssm,
                    &endpoints(),
                    Path::new("/tmp"),
                )
                .unwrap();
            assert!(deployed.timeout_secs >= 10, "{}", function.name);
            function.payload(3, "r1", 1_767_225_600).unwrap();
        }
    }

    #[test]
    fn an_error_answer_fails_the_check() {
        let fulfillment = &ALL[2];
        let ok = json!({"statusCode": 404, "body": r#"{"error":{"code":"not_found"}}"#});
        fulfillment.check(ok.to_string().as_bytes()).unwrap();
        let unavailable =
            json!({"statusCode": 503, "body": r#"{"error":{"code":"fulfillment_unavailable"}}"#});
        assert!(
            fulfillment
                .check(unavailable.to_string().as_bytes())
                .is_err()
        );
        let subscriptions = &ALL[5];
        let retry = json!({"batchItemFailures": [{"itemIdentifier": "1"}]});
        assert!(subscriptions.check(retry.to_string().as_bytes()).is_err());
    }
}
