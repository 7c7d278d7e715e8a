//! Development-only pages served next to the bundle's routes by `make dev`: a demo merchant
//! storefront (`/`), the copy-ready checkout button (`/example`, `examples/checkout-button.html`),
//! an embedded-mode example (`/embedded`), the success page the hosted checkout returns to
//! (`/thanks`, `examples/success.html`), a returning customer's Payment Element page
//! (`/returning`) and its return page (`/payments/return`), the pages' stylesheet
//! (`/assets/pages.css`), and an outbox of the emails sent through moto's SES, each on its own
//! page (`/dev/outbox/{n}`), with the recovery decisions and the orders, subscriptions and
//! access tables (`/dev/outbox`). None of this is in a Lambda binary.

use bytes::Bytes;
use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use checkout_core::clock::iso8601;
use checkout_core::pages::{FAVICON, PAGES_CSS, escape_html};
use checkout_core::store::{AccessRecord, DynamoDb, EventOutcome, OrderRecord, SubscriptionRecord};
use http::{HeaderValue, Method, StatusCode, header};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::TokioExecutor;
use lambda_http::{Body, Request, Response};
use serde::Serialize;
use serde_json::{Value, json};

/// Where the customer-facing pages' one stylesheet (`checkout_core::pages`) is served.
const PAGES_CSS_PATH: &str = "/assets/pages.css";

/// The merchant pages of `examples/`, served as they are but for their placeholders.
const SUCCESS_EXAMPLE: &str = include_str!("../../../examples/success.html");
const BUTTON_EXAMPLE: &str = include_str!("../../../examples/checkout-button.html");
/// The placeholders the examples' comments tell a merchant to replace.
const EXAMPLE_API: &str = "https://YOUR_API_ID.execute-api.YOUR_REGION.amazonaws.com";
const EXAMPLE_MERCHANT: &str = r#"<a class="merchant" href="https://shop.example/">Your Shop</a>"#;
const EXAMPLE_PRICE: &str = "price_YOUR_PRICE_ID";
const EXAMPLE_PRODUCT: &str = ">Your product<";

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
    /// `MERCHANT_SHOP_URL`, or the storefront itself.
    shop_url: String,
    products: Vec<Product>,
    /// The Stripe simulator's URL when it stands in for Stripe.
    simulator: Option<String>,
    publishable_key: Option<String>,
    outbox_url: String,
    dynamodb: DynamoDb,
    events_table: Option<String>,
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

/// One email of the outbox; `n` counts from 1 in the order moto received them.
#[derive(Serialize)]
struct EmailView {
    n: usize,
    to: String,
    subject: String,
    html: String,
    text: String,
    headers: Vec<HeaderView>,
}

#[derive(Serialize)]
struct HeaderView {
    name: String,
    value: String,
    /// The http(s) URLs of a `List-Unsubscribe`-style header, as links.
    links: Vec<String>,
}

/// What the recovery function did with one `checkout.session.expired` event.
#[derive(Serialize)]
struct DecisionView {
    session: String,
    received: String,
    outcome: String,
    error: Option<String>,
    attempts: u32,
}

/// The few attributes of an events-table item the outbox reads (a projection of
/// `EventRecord`).
#[derive(serde::Deserialize)]
struct DecisionRecord {
    #[serde(default)]
    object_id: Option<String>,
    #[serde(default)]
    received_at: i64,
    #[serde(default)]
    outcome_recovery: Option<EventOutcome>,
    #[serde(default)]
    attempts_recovery: u32,
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
    /// `MERCHANT_SHOP_URL`: where each page's merchant name links to (the storefront's `/`
    /// when unset).
    pub shop_url: Option<String>,
    pub products: Vec<Product>,
    pub simulator: Option<String>,
    pub publishable_key: Option<String>,
    pub aws_endpoint: String,
    pub dynamodb: DynamoDb,
    /// The events table, for the outbox's recovery decisions.
    pub events_table: Option<String>,
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
            ("embedded.html", include_str!("../templates/embedded.html")),
            ("outbox.html", include_str!("../templates/outbox.html")),
            (
                "outbox_email.html",
                include_str!("../templates/outbox_email.html"),
            ),
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
        pages.add_global("favicon", FAVICON);
        Self {
            pages,
            merchant: config.merchant,
            shop_url: config
                .shop_url
                .filter(|url| is_http_url(url))
                .unwrap_or_else(|| "/".into()),
            products: config.products,
            simulator: config.simulator,
            publishable_key: config.publishable_key,
            outbox_url: format!("{}/_outbox", config.aws_endpoint.trim_end_matches('/')),
            dynamodb: config.dynamodb,
            events_table: config.events_table,
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
        let email = path.strip_prefix("/dev/outbox/");
        if email.is_none()
            && !matches!(
                path,
                "/" | "/embedded"
                    | "/example"
                    | "/thanks"
                    | "/dev/outbox"
                    | "/returning"
                    | "/payments/return"
                    | PAGES_CSS_PATH
            )
        {
            return None;
        }
        if request.method() != Method::GET {
            return Some(checkout_core::http::method_not_allowed("GET"));
        }
        if let Some(n) = email {
            return Some(self.email_page(n).await);
        }
        let common = json!({
            "merchant": self.merchant,
            "shop_url": self.shop_url,
            "simulator": self.simulator,
        });
        let (name, extra) = match path {
            PAGES_CSS_PATH => return Some(stylesheet()),
            "/thanks" => return Some(self.example(SUCCESS_EXAMPLE, request)),
            "/example" => return Some(self.example(BUTTON_EXAMPLE, request)),
            "/" => ("storefront.html", json!({"products": self.products})),
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
                    "decisions": self.decisions().await,
                    "orders": self.orders().await,
                    "subscriptions": self.subscriptions().await,
                    "access": self.access().await,
                }),
            ),
        };
        Some(self.render(StatusCode::OK, name, merged(common, extra)))
    }

    /// `/dev/outbox/{n}`: one email, whole.
    async fn email_page(&self, n: &str) -> Response<Body> {
        let mut emails = self.emails().await;
        let count = emails.len();
        let found = n
            .parse::<usize>()
            .ok()
            .and_then(|n| emails.iter().position(|e| e.n == n))
            .map(|at| emails.swap_remove(at));
        let status = if found.is_some() {
            StatusCode::OK
        } else {
            StatusCode::NOT_FOUND
        };
        let email = found.map(|e| {
            let (n, html) = (e.n, with_base_target(&e.html));
            let mut view = serde_json::to_value(e).unwrap_or_default();
            view["html"] = html.into();
            view["count"] = count.into();
            view["newer"] = (n < count).then_some(n + 1).into();
            view["older"] = (n > 1).then(|| n - 1).into();
            view
        });
        let context = json!({
            "merchant": self.merchant,
            "shop_url": self.shop_url,
            "simulator": self.simulator,
            "email": email,
            "count": count,
        });
        self.render(status, "outbox_email.html", context)
    }

    /// An `examples/` page with its placeholders filled in for this stack: the API is the
    /// origin the browser used, the merchant this storefront's.
    fn example(&self, page: &str, request: &Request) -> Response<Body> {
        let product = self.products.iter().find(|p| p.recurring.is_none());
        html_response(
            StatusCode::OK,
            fill_example(
                page,
                &origin(request),
                &self.merchant,
                &self.shop_url,
                product,
            ),
        )
    }

    fn render(&self, status: StatusCode, name: &str, context: Value) -> Response<Body> {
        let rendered = self
            .pages
            .get_template(name)
            .and_then(|t| t.render(minijinja::Value::from(minijinja::value::Serde(context))));
        match rendered {
            Ok(body) => html_response(status, body),
            Err(err) => {
                tracing::error!(error = %err, "storefront template");
                html_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "template error".to_string(),
                )
            }
        }
    }

    /// The messages moto's SES accepted (its `/_outbox`, added by infra/moto_server.py),
    /// newest first.
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
        let mut emails: Vec<EmailView> = raw
            .iter()
            .enumerate()
            .map(|(at, message)| email_view(at + 1, message))
            .collect();
        emails.reverse();
        emails
    }

    /// Each `checkout.session.expired` event of the events table with the recovery
    /// function's outcome, newest first.
    async fn decisions(&self) -> Vec<DecisionView> {
        let Some(table) = &self.events_table else {
            return Vec::new();
        };
        let mut records: Vec<DecisionRecord> = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        // A dev table is small; the bound only keeps a runaway table from hanging the page.
        for _ in 0..50 {
            let scanned = self
                .dynamodb
                .scan()
                .table_name(table)
                .filter_expression("#type = :expired")
                .projection_expression(
                    "object_id, received_at, outcome_recovery, attempts_recovery",
                )
                .expression_attribute_names("#type", "type")
                .expression_attribute_values(
                    ":expired",
                    AttributeValue::S("checkout.session.expired".into()),
                )
                .set_exclusive_start_key(start.take())
                .send()
                .await;
            let output = match scanned {
                Ok(output) => output,
                Err(err) => {
                    tracing::warn!(error = %err, table, "events table unreadable");
                    break;
                }
            };
            records.extend(
                output
                    .items
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|item| serde_dynamo::from_item(item).ok()),
            );
            start = output.last_evaluated_key.filter(|key| !key.is_empty());
            if start.is_none() {
                break;
            }
        }
        records.sort_by_key(|r| std::cmp::Reverse(r.received_at));
        records.into_iter().map(decision_view).collect()
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

/// `page` (an `examples/` file) with its placeholders replaced: the API base, the merchant's
/// name and home page, and a one-time product to sell.
fn fill_example(
    page: &str,
    api: &str,
    merchant: &str,
    shop_url: &str,
    product: Option<&Product>,
) -> String {
    let merchant = format!(
        r#"<a class="merchant" href="{}">{}</a>"#,
        escape_html(shop_url),
        escape_html(merchant)
    );
    page.replace(EXAMPLE_API, &escape_html(api))
        .replace(EXAMPLE_MERCHANT, &merchant)
        .replace(
            EXAMPLE_PRICE,
            &escape_html(product.map_or("", |p| p.price.as_str())),
        )
        .replace(
            EXAMPLE_PRODUCT,
            &format!(
                ">{}<",
                escape_html(product.map_or("No product", |p| p.name.as_str()))
            ),
        )
}

fn merged(mut context: Value, extra: Value) -> Value {
    if let (Value::Object(context), Value::Object(extra)) = (&mut context, extra) {
        context.extend(extra);
    }
    context
}

fn html_response(status: StatusCode, body: String) -> Response<Body> {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

fn stylesheet() -> Response<Body> {
    let mut response = Response::new(Body::from(PAGES_CSS));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

fn is_http_url(url: &str) -> bool {
    url.starts_with("https://") || url.starts_with("http://")
}

/// `http://{Host}`, the origin the browser used, when the `Host` header is a plain host and
/// port; otherwise empty (URLs relative to the page, the same origin).
fn origin(request: &Request) -> String {
    request
        .headers()
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .filter(|host| {
            !host.is_empty()
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .map(|host| format!("http://{host}"))
        .unwrap_or_default()
}

/// Links in a sandboxed frame open a new tab (`<base target="_blank">`), not the frame.
fn with_base_target(html: &str) -> String {
    if html.is_empty() {
        return String::new();
    }
    let base = r#"<base target="_blank">"#;
    let lower = html.to_ascii_lowercase();
    let at = lower
        .find("<head>")
        .map(|i| i + "<head>".len())
        .or_else(|| {
            let html_tag = lower.find("<html")?;
            Some(html_tag + lower[html_tag..].find('>')? + 1)
        });
    match at {
        Some(at) => format!("{}{base}{}", &html[..at], &html[at..]),
        None => format!("{base}{html}"),
    }
}

/// One message of moto's `/_outbox`, from its raw MIME.
fn email_view(n: usize, message: &Value) -> EmailView {
    let mime = message["raw"].as_str().unwrap_or_default();
    let parsed = mail_parser::MessageParser::default().parse(mime.as_bytes());
    let to = message["destinations"]
        .as_array()
        .map(|d| {
            d.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    let Some(parsed) = parsed else {
        return EmailView {
            n,
            to,
            subject: message["subject"].as_str().unwrap_or_default().to_string(),
            html: String::new(),
            text: mime.to_string(),
            headers: Vec::new(),
        };
    };
    let headers = parsed
        .headers()
        .iter()
        .map(|h| {
            let raw = mime
                .get(h.offset_start as usize..h.offset_end as usize)
                .unwrap_or_default();
            header_view(h.name.as_str(), &h.value, raw)
        })
        .collect();
    EmailView {
        n,
        to,
        subject: parsed.subject().unwrap_or_default().to_string(),
        html: parsed
            .body_html(0)
            .map(|h| h.into_owned())
            .unwrap_or_default(),
        // Only a real text part (body_text would make one out of the HTML).
        text: parsed
            .text_bodies()
            .next()
            .filter(|part| !part.is_text_html())
            .and_then(|part| part.text_contents())
            .unwrap_or_default()
            .to_string(),
        headers,
    }
}

/// A header as a reader wants it: decoded text and addresses, the rest as sent (unfolded).
fn header_view(name: &str, value: &mail_parser::HeaderValue<'_>, raw: &str) -> HeaderView {
    use mail_parser::HeaderValue as V;
    let unfolded = raw.split_whitespace().collect::<Vec<_>>().join(" ");
    let (value, links) = match value {
        V::Text(text) => (text.to_string(), Vec::new()),
        V::TextList(list) => (list.join(", "), Vec::new()),
        V::Address(addresses) => {
            let shown = addresses
                .iter()
                .map(|a| match (a.name.as_deref(), a.address.as_deref()) {
                    (Some(name), Some(address)) => format!("{name} <{address}>"),
                    (None, Some(address)) => address.to_string(),
                    (Some(name), None) => name.to_string(),
                    (None, None) => String::new(),
                })
                .collect::<Vec<_>>()
                .join(", ");
            let links = addresses
                .iter()
                .filter_map(|a| a.address.as_deref())
                .filter(|a| is_http_url(a))
                .map(str::to_string)
                .collect();
            (if shown.is_empty() { unfolded } else { shown }, links)
        }
        _ => (unfolded, Vec::new()),
    };
    HeaderView {
        name: name.to_string(),
        value,
        links,
    }
}

fn decision_view(record: DecisionRecord) -> DecisionView {
    let (outcome, error) = match record.outcome_recovery {
        None => ("pending".to_string(), None),
        Some(EventOutcome::Done { .. }) => ("done".to_string(), None),
        Some(EventOutcome::Skipped { reason, .. }) => (format!("skipped ({reason})"), None),
        Some(EventOutcome::Failed { reason, error, .. }) => {
            (format!("failed ({reason})"), Some(error))
        }
    };
    DecisionView {
        session: record.object_id.unwrap_or_default(),
        received: iso8601(record.received_at),
        outcome,
        error,
        attempts: record.attempts_recovery,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn mug() -> Product {
        Product {
            price: "price_mug".into(),
            name: "Mug & <Co>".into(),
            amount: "€15.00".into(),
            recurring: None,
        }
    }

    #[test]
    fn the_examples_hold_the_placeholders_their_comments_name() {
        for (name, page) in [
            ("success.html", SUCCESS_EXAMPLE),
            ("checkout-button.html", BUTTON_EXAMPLE),
        ] {
            assert_eq!(page.matches(EXAMPLE_MERCHANT).count(), 1, "{name}");
            assert!(page.contains(EXAMPLE_API), "{name}");
            assert!(page.contains(r#"<link rel="stylesheet" href="/assets/pages.css">"#));
            assert!(page.contains(
                r#"<meta name="viewport" content="width=device-width, initial-scale=1">"#
            ));
            assert!(page.contains(FAVICON), "{name}: the same favicon");
        }
        assert_eq!(
            SUCCESS_EXAMPLE
                .matches(&format!(
                    r#"<meta name="checkout-api" content="{EXAMPLE_API}">"#
                ))
                .count(),
            1
        );
        for id in [
            r#"id="order-message""#,
            r#"id="order-items""#,
            r#"id="order-total""#,
        ] {
            assert!(SUCCESS_EXAMPLE.contains(id), "{id}");
        }
        assert_eq!(
            BUTTON_EXAMPLE
                .matches(&format!(r#"action="{EXAMPLE_API}/checkout/sessions""#))
                .count(),
            2,
            "the plain form and the fetch one"
        );
        assert!(BUTTON_EXAMPLE.matches(EXAMPLE_PRICE).count() >= 2);
        assert_eq!(BUTTON_EXAMPLE.matches(EXAMPLE_PRODUCT).count(), 2);
    }

    #[test]
    fn the_storefront_fills_the_examples_in_escaped() {
        let filled = fill_example(
            BUTTON_EXAMPLE,
            "http://127.0.0.1:9100",
            "Demo <Shop>",
            "http://127.0.0.1:9100/",
            Some(&mug()),
        );
        for placeholder in [
            EXAMPLE_API,
            EXAMPLE_MERCHANT,
            EXAMPLE_PRICE,
            EXAMPLE_PRODUCT,
        ] {
            assert!(!filled.contains(placeholder), "{placeholder}");
        }
        assert!(filled.contains(r#"action="http://127.0.0.1:9100/checkout/sessions""#));
        assert!(filled.contains(
            r#"<a class="merchant" href="http://127.0.0.1:9100/">Demo &lt;Shop&gt;</a>"#
        ));
        assert!(filled.contains(r#"value="price_mug""#));
        assert!(filled.contains("<h1>Mug &amp; &lt;Co&gt;</h1>"));

        let success = fill_example(SUCCESS_EXAMPLE, "", "Demo Shop", "/", None);
        assert!(success.contains(r#"<meta name="checkout-api" content="">"#));
    }

    #[test]
    fn the_simulator_uses_the_same_stylesheet_and_icon() {
        let layout = include_str!("../../stripe-simulator/templates/layout.html");
        assert!(
            layout.contains("{{ pages_css }}"),
            "the simulator's layout takes the stylesheet"
        );
        assert!(layout.contains(FAVICON));
    }

    #[test]
    fn the_api_origin_is_the_host_the_browser_used() {
        let request = |host: &str| {
            http::Request::builder()
                .uri("/thanks")
                .header(header::HOST, host)
                .body(Body::Empty)
                .unwrap()
        };
        assert_eq!(origin(&request("127.0.0.1:9100")), "http://127.0.0.1:9100");
        assert_eq!(origin(&request("[::1]:9000")), "http://[::1]:9000");
        assert_eq!(origin(&request(r#"x"><script>"#)), "");
    }

    #[test]
    fn email_links_open_outside_the_frame() {
        assert_eq!(
            with_base_target(
                "<!doctype html><html lang=\"en\">\n<head><meta charset=\"utf-8\"></head><body>x</body></html>"
            ),
            "<!doctype html><html lang=\"en\">\n<head><base target=\"_blank\"><meta charset=\"utf-8\"></head><body>x</body></html>"
        );
        assert_eq!(
            with_base_target("<html lang=\"fr\"><body>x</body></html>"),
            "<html lang=\"fr\"><base target=\"_blank\"><body>x</body></html>"
        );
        assert_eq!(
            with_base_target("<p>x</p>"),
            "<base target=\"_blank\"><p>x</p>"
        );
        assert_eq!(with_base_target(""), "");
    }

    #[test]
    fn an_email_reads_from_its_raw_mime() {
        let raw = "From: \"Demo Shop\" <orders@shop.example>\r\nTo: jenny@example.com\r\nSubject: =?utf-8?q?Caf=C3=A9?=\r\nList-Unsubscribe: <http://127.0.0.1:9100/recovery/unsubscribe?token=a.b>\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHello\r\n--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Hello</p>\r\n--b--\r\n";
        let email = email_view(
            3,
            &json!({"raw": raw, "destinations": ["jenny@example.com"]}),
        );
        assert_eq!((email.n, email.to.as_str()), (3, "jenny@example.com"));
        assert_eq!(email.subject, "Café");
        assert_eq!(email.text.trim(), "Hello");
        assert_eq!(email.html.trim(), "<p>Hello</p>");
        let header = |name: &str| {
            email
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .unwrap_or_else(|| panic!("{name}"))
        };
        assert_eq!(header("From").value, "Demo Shop <orders@shop.example>");
        assert_eq!(header("Subject").value, "Café");
        assert_eq!(
            header("List-Unsubscribe").links,
            ["http://127.0.0.1:9100/recovery/unsubscribe?token=a.b"]
        );
        assert_eq!(
            header("List-Unsubscribe-Post").value,
            "List-Unsubscribe=One-Click"
        );
    }

    #[test]
    fn recovery_decisions_read_as_words() {
        let record = |outcome| DecisionRecord {
            object_id: Some("cs_test_1".into()),
            received_at: 0,
            outcome_recovery: outcome,
            attempts_recovery: 1,
        };
        let shown = |outcome| decision_view(record(outcome)).outcome;
        assert_eq!(shown(None), "pending");
        assert_eq!(shown(Some(EventOutcome::Done { at: 1 })), "done");
        assert_eq!(
            shown(Some(EventOutcome::Skipped {
                reason: "no_consent".into(),
                at: 1
            })),
            "skipped (no_consent)"
        );
        assert_eq!(
            shown(Some(EventOutcome::Failed {
                reason: "stripe".into(),
                error: "timeout".into(),
                at: 1
            })),
            "failed (stripe)"
        );
    }
}
