//! Development-only pages served next to the bundle's routes by `make dev`: a demo merchant
//! storefront (`/`), the copy-ready checkout button (`/example`, `examples/checkout-button.html`),
//! an embedded-mode example (`/embedded`), a custom payment page (`/custom`, `ui_mode=custom`),
//! the success page the hosted checkout returns to (`/thanks`, `examples/success.html`), a
//! returning customer's Payment Element page (`/returning`) and its return page
//! (`/payments/return`), the pages' stylesheet (`/assets/pages.css`), and an outbox of the
//! emails sent through moto's SES (`outbox`). Each product card says what the shop policy
//! means for it and how many are left (`catalog`). None of this is in a Lambda binary.

mod catalog;
mod outbox;

use bytes::Bytes;

use checkout_core::pages::{FAVICON, PAGES_CSS, escape_html};
use checkout_core::store::DynamoDb;
use http::{HeaderValue, Method, StatusCode, header};
use http_body_util::Empty;
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
    /// The shop policy and stock levels the product cards show.
    catalog: catalog::Catalog,
}

/// The demo's signed-in returning customer, and the secret its "server" mints tokens with.
#[derive(Debug, Clone)]
pub struct ReturningCustomer {
    pub customer: String,
    pub name: String,
    pub token_secret: String,
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
        let pages = templates();
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
            dynamodb: config.dynamodb.clone(),
            events_table: config.events_table,
            orders_table: config.orders_table,
            subscriptions_table: config.subscriptions_table,
            access_table: config.access_table,
            returning: config.returning,
            http: Client::builder(TokioExecutor::new()).build_http(),
            catalog: catalog::Catalog::from_env(&config.dynamodb),
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
                    | "/custom"
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
            "/" => (
                "storefront.html",
                json!({"products": self.catalog.views(&self.products).await}),
            ),
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
            // Both sell the first one-time product (the mug) in a page of the merchant's.
            "/embedded" | "/custom" => {
                let first = self.products.iter().find(|p| p.recurring.is_none());
                (
                    if path == "/custom" {
                        "custom.html"
                    } else {
                        "embedded.html"
                    },
                    json!({
                        "publishable_key": self.publishable_key,
                        "price": first.map(|p| p.price.clone()),
                        "product": first.map(|p| p.name.clone()),
                    }),
                )
            }
            _ => ("outbox.html", self.outbox().await),
        };
        Some(self.render(StatusCode::OK, name, merged(common, extra)))
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
}

/// The pages' templates, parsed once (auto-escaped: they end in `.html`).
fn templates() -> minijinja::Environment<'static> {
    let mut pages = minijinja::Environment::new();
    for (name, source) in [
        ("layout.html", include_str!("../templates/layout.html")),
        (
            "storefront.html",
            include_str!("../templates/storefront.html"),
        ),
        ("embedded.html", include_str!("../templates/embedded.html")),
        ("custom.html", include_str!("../templates/custom.html")),
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
    pages
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

    fn render(name: &str, context: Value) -> String {
        let common = json!({"merchant": "Demo Shop", "shop_url": "/", "simulator": "http://127.0.0.1:12111"});
        templates()
            .get_template(name)
            .and_then(|t| {
                t.render(minijinja::Value::from(minijinja::value::Serde(merged(
                    common, context,
                ))))
            })
            .expect("the template renders")
    }

    #[test]
    fn a_card_shows_its_terms_and_stock_and_an_empty_shelf_cannot_be_bought() {
        let card = |price: &str, left: Option<i64>| {
            json!({
                "price": price, "name": price, "amount": "12.00 EUR", "recurring": null,
                "terms": ["Ships to FR, DE, BE"], "left": left,
                "out_of_stock": left.is_some_and(|n| n <= 0), "max_quantity": left.map_or(10, |n| n.clamp(1, 10)),
            })
        };
        let page = render(
            "storefront.html",
            json!({"products": [card("price_mug", None), card("price_poster", Some(3)), card("price_print", Some(0))]}),
        );
        assert_eq!(page.matches("<li>Ships to FR, DE, BE</li>").count(), 3);
        assert!(
            page.contains(r#"<p class="stock" data-left="3">3 left</p>"#),
            "{page}"
        );
        assert!(page.contains(r#"max="3""#));
        assert!(page.contains("<strong>Out of stock</strong>"));
        assert!(page.contains(
            r#"<button type="submit" data-price="price_print" disabled>Buy now</button>"#
        ));
        assert!(
            page.contains(r#"<button type="submit" data-price="price_poster">Buy now</button>"#)
        );
        assert_eq!(
            page.matches(" disabled").count(),
            2,
            "the empty shelf's field and button"
        );
        assert_eq!(
            page.matches(r#"class="stock""#).count(),
            2,
            "untracked: no stock line"
        );
        assert!(page.contains(r#"href="/custom""#));
    }

    #[test]
    fn the_custom_page_asks_for_a_custom_session_and_mounts_the_simulator_offline() {
        let page = render(
            "custom.html",
            json!({"price": "price_mug", "product": "Mug"}),
        );
        assert!(page.contains(r#"ui_mode: "custom""#));
        assert!(page.contains(r#"data-price="price_mug""#));
        assert!(
            page.contains(r#"data-simulator="http:"#),
            "the simulator URL, escaped"
        );
        assert!(page.contains(r#""/elements/checkout?client_secret=""#));
        assert!(
            !page.contains("js.stripe.com"),
            "no Stripe.js without a publishable key"
        );
        let online = render(
            "custom.html",
            json!({"price": "price_mug", "product": "Mug", "publishable_key": "pk_test_x"}),
        );
        assert!(
            online.contains(r#"<script src="https://js.stripe.com/basil/stripe.js"></script>"#)
        );
        assert!(online.contains("initCheckout({fetchClientSecret})"));
    }

    #[test]
    fn a_physical_order_shows_where_it_ships_under_its_row() {
        let order = |id: &str, ship_to: Option<&str>, shipping: Option<&str>, tax: Option<&str>| {
            json!({"id": id, "state": "fulfilled", "payment": "paid", "attempts": 1,
                   "ship_to": ship_to, "shipping": shipping, "tax": tax})
        };
        let page = render(
            "outbox.html",
            json!({
                "emails": [], "decisions": [], "subscriptions": [], "access": [],
                "orders": [
                    order("cs_test_1", Some("FR"), Some("Express shipping, 14.40 EUR"), Some("VAT 20% 13.40 EUR")),
                    order("cs_test_2", None, None, None),
                ],
            }),
        );
        assert!(page.contains(
            r#"<td colspan="4" class="note">Ships to <span class="ship-to">FR</span> · <span class="rate">Express shipping, 14.40 EUR</span> · Tax <span class="tax">VAT 20% 13.40 EUR</span></td>"#
        ), "{page}");
        assert_eq!(
            page.matches(r#"class="order-details""#).count(),
            1,
            "none under a digital order"
        );
    }
}
