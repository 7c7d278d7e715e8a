//! Development-only pages served next to the bundle's routes by `make dev`: a demo merchant
//! storefront (`/`), an embedded-mode example (`/embedded`), the success page the hosted
//! checkout returns to (`/thanks`), a returning customer's Payment Element page (`/returning`)
//! and its return page (`/payments/return`), and an outbox of the emails sent through moto's SES with
//! the orders, subscriptions and access tables (`/dev/outbox`). None of this is in a Lambda
//! binary.

use bytes::Bytes;
use checkout_core::clock::iso8601;
use checkout_core::store::{AccessRecord, DynamoDb, OrderRecord, SubscriptionRecord};
use http::{HeaderValue, Method, StatusCode, header};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::TokioExecutor;
use lambda_http::{Body, Request, Response};
use serde::Serialize;
use serde_json::{Value, json};

#[derive(Debug, Clone, Default, Serialize)]
pub struct Product {
    pub price: String,
    pub name: String,
    pub amount: String,
    /// The billing interval (`"month"`) of a recurring price: the product is subscribed to
    /// (`mode=subscription`, as Stripe requires for a recurring price), not bought.
    pub recurring: Option<String>,
}

pub struct Storefront {
    pages: minijinja::Environment<'static>,
    merchant: String,
    products: Vec<Product>,
    /// The Stripe simulator's URL when it stands in for Stripe.
    simulator: Option<String>,
    publishable_key: Option<String>,
    outbox_url: String,
    dynamodb: DynamoDb,
    orders_table: Option<String>,
    subscriptions_table: Option<String>,
    access_table: Option<String>,
    returning: Option<ReturningCustomer>,
    http: Client<HttpConnector, Empty<Bytes>>,
}

/// The demo's signed-in returning customer, and the secret its "server" mints tokens with.
#[derive(Debug, Clone)]
pub struct ReturningCustomer {
    pub customer: String,
    pub name: String,
    pub token_secret: String,
}

#[derive(Serialize)]
struct EmailView {
    to: String,
    subject: String,
    html: String,
}

#[derive(Serialize)]
struct SubscriptionView {
    id: String,
    status: String,
    renewals: u32,
    latest_invoice: String,
    access: String,
}

#[derive(Serialize)]
struct AccessView {
    holder: String,
    product: String,
    active: bool,
    until: String,
    source: String,
}

#[derive(Serialize)]
struct OrderView {
    id: String,
    state: &'static str,
    payment: String,
    attempts: u32,
}

pub struct StorefrontConfig {
    pub merchant: String,
    pub products: Vec<Product>,
    pub simulator: Option<String>,
    pub publishable_key: Option<String>,
    pub aws_endpoint: String,
    pub dynamodb: DynamoDb,
    pub orders_table: Option<String>,
    pub subscriptions_table: Option<String>,
    pub access_table: Option<String>,
    pub returning: Option<ReturningCustomer>,
}

impl Storefront {
    pub fn new(config: StorefrontConfig) -> Self {
        let mut pages = minijinja::Environment::new();
        for (name, source) in [
            ("layout.html", include_str!("../templates/layout.html")),
            (
                "storefront.html",
                include_str!("../templates/storefront.html"),
            ),
            ("thanks.html", include_str!("../templates/thanks.html")),
            ("embedded.html", include_str!("../templates/embedded.html")),
            ("outbox.html", include_str!("../templates/outbox.html")),
            (
                "returning.html",
                include_str!("../templates/returning.html"),
            ),
            (
                "payment_return.html",
                include_str!("../templates/payment_return.html"),
            ),
        ] {
            pages
                .add_template(name, source)
                .expect("storefront templates parse");
        }
        Self {
            pages,
            merchant: config.merchant,
            products: config.products,
            simulator: config.simulator,
            publishable_key: config.publishable_key,
            outbox_url: format!("{}/_outbox", config.aws_endpoint.trim_end_matches('/')),
            dynamodb: config.dynamodb,
            orders_table: config.orders_table,
            subscriptions_table: config.subscriptions_table,
            access_table: config.access_table,
            returning: config.returning,
            http: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// The page for `path`, or `None` when the path is not the storefront's.
    pub async fn page(&self, request: &Request) -> Option<Response<Body>> {
        let path = request.uri().path();
        if !matches!(
            path,
            "/" | "/embedded" | "/thanks" | "/dev/outbox" | "/returning" | "/payments/return"
        ) {
            return None;
        }
        if request.method() != Method::GET {
            return Some(checkout_core::http::method_not_allowed("GET"));
        }
        let common = json!({"merchant": self.merchant, "simulator": self.simulator});
        let (name, extra) = match path {
            "/" => ("storefront.html", json!({"products": self.products})),
            "/thanks" => ("thanks.html", json!({})),
            "/payments/return" => ("payment_return.html", json!({})),
            "/returning" => {
                let Some(returning) = &self.returning else {
                    return Some(checkout_core::http::not_found());
                };
                let retry = request.uri().query().is_some_and(|q| q.contains("retry="));
                (
                    "returning.html",
                    json!({
                        "customer": returning.customer,
                        "customer_name": returning.name,
                        "token": returning.token(),
                        "products": self.products,
                        "publishable_key": self.publishable_key,
                        "retry": retry,
                    }),
                )
            }
            "/embedded" => {
                let first = self.products.first();
                (
                    "embedded.html",
                    json!({
                        "publishable_key": self.publishable_key,
                        "price": first.map(|p| p.price.clone()),
                        "product": first.map(|p| p.name.clone()),
                    }),
                )
            }
            _ => (
                "outbox.html",
                json!({
                    "emails": self.emails().await,
                    "orders": self.orders().await,
                    "subscriptions": self.subscriptions().await,
                    "access": self.access().await,
                }),
            ),
        };
        let mut context = common;
        if let (Value::Object(context), Value::Object(extra)) = (&mut context, extra) {
            context.extend(extra);
        }
        Some(self.render(name, context))
    }

    fn render(&self, name: &str, context: Value) -> Response<Body> {
        let rendered = self
            .pages
            .get_template(name)
            .and_then(|t| t.render(minijinja::Value::from(minijinja::value::Serde(context))));
        let (status, body) = match rendered {
            Ok(body) => (StatusCode::OK, body),
            Err(err) => {
                tracing::error!(error = %err, "storefront template");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "template error".to_string(),
                )
            }
        };
        let mut response = Response::new(Body::from(body));
        *response.status_mut() = status;
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        response
    }

    /// The messages moto's SES accepted (its `/_outbox`, added by infra/moto_server.py).
    async fn emails(&self) -> Vec<EmailView> {
        let Ok(uri) = self.outbox_url.parse::<http::Uri>() else {
            return Vec::new();
        };
        let raw: Vec<Value> = match self.http.get(uri).await {
            Ok(response) => match response.into_body().collect().await {
                Ok(body) => serde_json::from_slice(&body.to_bytes()).unwrap_or_default(),
                Err(_) => Vec::new(),
            },
            Err(err) => {
                tracing::warn!(error = %err, "outbox unreachable");
                Vec::new()
            }
        };
        let parser = mail_parser::MessageParser::default();
        raw.iter()
            .rev()
            .map(|message| {
                let mime = message["raw"].as_str().unwrap_or_default();
                let parsed = parser.parse(mime.as_bytes());
                EmailView {
                    to: message["destinations"]
                        .as_array()
                        .map(|d| {
                            d.iter()
                                .filter_map(Value::as_str)
                                .collect::<Vec<_>>()
                                .join(", ")
                        })
                        .unwrap_or_default(),
                    subject: parsed
                        .as_ref()
                        .and_then(|m| m.subject())
                        .unwrap_or_default()
                        .to_string(),
                    html: parsed
                        .as_ref()
                        .and_then(|m| m.body_html(0))
                        .map(|h| h.into_owned())
                        .unwrap_or_default(),
                }
            })
            .collect()
    }

    async fn orders(&self) -> Vec<OrderView> {
        let Some(table) = &self.orders_table else {
            return Vec::new();
        };
        let items = match self.dynamodb.scan().table_name(table).send().await {
            Ok(output) => output.items.unwrap_or_default(),
            Err(err) => {
                tracing::warn!(error = %err, "orders table unreadable");
                return Vec::new();
            }
        };
        let mut orders: Vec<(i64, OrderView)> = items
            .into_iter()
            .filter_map(|item| serde_dynamo::from_item::<_, OrderRecord>(item).ok())
            .map(|order| {
                (
                    order.updated_at,
                    OrderView {
                        state: order.status(),
                        id: order.order_id,
                        payment: order
                            .payment_status
                            .and_then(|p| serde_json::to_value(p).ok())
                            .and_then(|v| v.as_str().map(str::to_string))
                            .unwrap_or_default(),
                        attempts: order.attempts,
                    },
                )
            })
            .collect();
        orders.sort_by_key(|(updated, _)| std::cmp::Reverse(*updated));
        orders.into_iter().map(|(_, order)| order).collect()
    }

    /// Every item of `table`, newest first by `updated_at`, as `T`.
    async fn scan<T: serde::de::DeserializeOwned>(&self, table: Option<&String>) -> Vec<T> {
        let Some(table) = table else {
            return Vec::new();
        };
        match self.dynamodb.scan().table_name(table).send().await {
            Ok(output) => output
                .items
                .unwrap_or_default()
                .into_iter()
                .filter_map(|item| serde_dynamo::from_item::<_, T>(item).ok())
                .collect(),
            Err(err) => {
                tracing::warn!(error = %err, table, "table unreadable");
                Vec::new()
            }
        }
    }

    async fn subscriptions(&self) -> Vec<SubscriptionView> {
        let mut records: Vec<SubscriptionRecord> =
            self.scan(self.subscriptions_table.as_ref()).await;
        records.sort_by_key(|r| std::cmp::Reverse(r.updated_at));
        records
            .into_iter()
            .map(|r| SubscriptionView {
                id: r.subscription_id.to_string(),
                status: r
                    .state
                    .as_ref()
                    .map_or("unknown", |s| s.status.as_str())
                    .to_string(),
                renewals: r.renewals,
                latest_invoice: r
                    .latest_invoice_status
                    .and_then(|s| serde_json::to_value(s).ok())
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
                access: match (r.access, r.access_until) {
                    (Some(checkout_core::store::AccessState::Granted), Some(until)) => {
                        format!("granted until {}", iso8601(until))
                    }
                    (Some(checkout_core::store::AccessState::Granted), None) => "granted".into(),
                    (Some(checkout_core::store::AccessState::Revoked), _) => "revoked".into(),
                    (None, _) => "none".into(),
                },
            })
            .collect()
    }

    async fn access(&self) -> Vec<AccessView> {
        let mut records: Vec<AccessRecord> = self.scan(self.access_table.as_ref()).await;
        records.sort_by_key(|r| std::cmp::Reverse(r.updated_at));
        records
            .into_iter()
            .map(|r| AccessView {
                holder: r.holder,
                product: r.product,
                active: r.active,
                until: r.until.map(iso8601).unwrap_or_else(|| "no end".into()),
                source: r.source,
            })
            .collect()
    }
}

impl ReturningCustomer {
    /// What the merchant's server does after its login: a token for this page view.
    fn token(&self) -> String {
        let claims = checkout_core::callers::CustomerClaims {
            customer: self.customer.parse().expect("a customer id"),
            client_reference_id: Some("demo-user".into()),
            exp: checkout_core::clock::Clock::system().now() + 600,
        };
        checkout_core::callers::mint(self.token_secret.as_bytes(), &claims)
    }
}
