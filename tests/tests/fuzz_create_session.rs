//! Fuzzing `POST /checkout/sessions` and `POST /payments`: [`CASES`] (100,000) generated
//! requests through the real handler (`checkout::handle`, what the create-session Lambda
//! runs) against moto and a fake Stripe (wiremock) that creates whatever it is asked to.
//!
//! The mix: any method, content type (JSON, form, none, any bytes), body and `Origin`,
//! `Authorization` and `Idempotency-Key` headers; valid JSON requests of either route with
//! fields removed or replaced by hostile JSON; form posts with hostile pairs; any JSON
//! document; bodies over 64 KB; valid requests (JSON and form sessions, payments).
//!
//! Invariants: no panic; every status is one docs/api.md documents for these routes, and
//! every error body is the documented error with a documented code for its status; what the
//! request's headers decide (method, origin, `Authorization`, size) is answered as documented;
//! a valid request is answered 201 (303 for a form); nothing is stored or created for a
//! refused request: Stripe's session and PaymentIntent creations, the sessions table and the
//! requests table hold exactly what the new successes made. Stripe and DynamoDB being up, no
//! case is a 5xx.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use checkout_core::checkout::{self, SessionCreator};
use integration_tests::checkout::{Harness, MERCHANT_KEY, SHOP, session_json};
use integration_tests::fuzz::{self, CASES, Mutation};
use integration_tests::*;
use lambda_http::{Body, Request};
use proptest::prelude::*;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

/// Cases of the one property below: the routes' whole budget.
const CREATE_CASES: u32 = CASES;

/// The codes docs/api.md documents for `POST /checkout/sessions` and `POST /payments`.
fn documented(status: u16) -> Option<&'static [&'static str]> {
    Some(match status {
        400 => &[
            "invalid_request",
            "customer_requires_token",
            "invalid_customer_token",
            "customer_unusable",
        ],
        401 => &["unauthorized"],
        403 => &["origin_not_allowed"],
        405 => &["method_not_allowed"],
        409 => &["idempotency_conflict", "out_of_stock"],
        413 => &["payload_too_large"],
        415 => &["unsupported_media_type"],
        502 => &["stripe_unavailable"],
        503 => &["stripe_unavailable", "storage_unavailable"],
        _ => return None,
    })
}

const CREATE_FIELDS: &[&str] = &[
    "/line_items",
    "/line_items/0",
    "/line_items/0/price",
    "/line_items/0/quantity",
    "/line_items/0/price_data",
    "/line_items/0/adjustable_quantity",
    "/mode",
    "/ui_mode",
    "/customer",
    "/customer_token",
    "/customer_email",
    "/client_reference_id",
    "/locale",
    "/account",
    "/metadata",
    "/metadata/cart",
    "/shipping_options",
    "/success_url",
    "/amount",
];

const PAYMENT_FIELDS: &[&str] = &[
    "/line_items",
    "/line_items/0",
    "/line_items/0/price",
    "/line_items/0/quantity",
    "/line_items/0/price_data",
    "/customer",
    "/customer_token",
    "/account",
    "/metadata",
    "/metadata/cart",
    "/amount",
    "/currency",
];

/// Form keys the handler knows, and some it must refuse.
const FORM_KEYS: &[&str] = &[
    "price",
    "quantity",
    "line_items[0][price]",
    "line_items[0][quantity]",
    "line_items[1][price]",
    "line_items[99999999999][price]",
    "line_items[-1][price]",
    "line_items[][price]",
    "line_items[0]",
    "line_items",
    "mode",
    "ui_mode",
    "customer",
    "customer_token",
    "customer_email",
    "client_reference_id",
    "locale",
    "account",
    "metadata[cart]",
    "metadata[]",
    "metadata",
    "price_data[unit_amount]",
    "line_items[0][price_data][unit_amount]",
    "shipping_options[0][shipping_rate]",
];

const CONTENT_TYPES: &[&str] = &[
    "application/json",
    "application/json; charset=utf-8",
    "APPLICATION/JSON",
    "application/json;",
    "application/x-www-form-urlencoded",
    "application/x-www-form-urlencoded; charset=UTF-8",
    "text/plain",
    "multipart/form-data; boundary=x",
    "application/xml",
    "",
    ";",
];

const ROUTES: &[&str] = &["/checkout/sessions", checkout::PAYMENTS_PATH];

/// The headers every kind of case may carry: `None` leaves one out; a value that is not a
/// valid header value is left out too, as no client could send it.
#[derive(Debug, Clone)]
struct Headers {
    origin: Option<Vec<u8>>,
    authorization: Option<Vec<u8>>,
    idempotency_key: Option<Vec<u8>>,
}

fn header_value(known: Vec<&'static str>) -> BoxedStrategy<Option<Vec<u8>>> {
    prop_oneof![
        6 => Just(None),
        3 => prop::sample::select(known).prop_map(|v| Some(v.as_bytes().to_vec())),
        1 => fuzz::header_bytes().prop_map(Some),
    ]
    .boxed()
}

fn headers() -> impl Strategy<Value = Headers> {
    (
        header_value(vec![
            SHOP,
            SHOP,
            "https://evil.example",
            "null",
            "https://shop.example.evil",
        ]),
        header_value(vec![
            "Bearer mk_test_merchant_key_of_at_least_32_bytes",
            "Bearer mk_test_merchant_key_of_at_least_32_bytes",
            "Bearer ",
            "Basic bWs6",
            "bearer mk_test_merchant_key_of_at_least_32_bytes",
            "Bearer mk_test_merchant_key_of_at_least_32_bytez",
        ]),
        header_value(vec!["order-42", "", " ", "k".repeat(300).leak()]),
    )
        .prop_map(|(origin, authorization, idempotency_key)| Headers {
            origin,
            authorization,
            idempotency_key,
        })
}

#[derive(Debug, Clone)]
enum Case {
    /// Any method, route, content type and body.
    Random {
        method: &'static str,
        route: &'static str,
        content_type: Option<Vec<u8>>,
        body: Vec<u8>,
        headers: Headers,
    },
    /// A valid JSON request of `route` after `mutations`, sent as JSON.
    JsonHostile {
        route: &'static str,
        mutations: Vec<(&'static str, Mutation)>,
        headers: Headers,
    },
    /// Any JSON document, sent as JSON.
    AnyJson {
        route: &'static str,
        document: Value,
        headers: Headers,
    },
    /// A form post of a valid cart with pairs removed or added.
    FormHostile {
        drop: Vec<bool>,
        extra: Vec<(String, String)>,
        headers: Headers,
    },
    /// A body over 64 KB.
    Oversized { route: &'static str },
    /// A valid request: a JSON session, a form session or a payment.
    Valid { kind: Valid, with_key: bool },
}

#[derive(Debug, Clone, Copy)]
enum Valid {
    Json,
    Form,
    Payment,
}

/// Weights out of 1,000: the valid cases and the hostile ones that pass validation are those
/// that reach Stripe and DynamoDB; the rest are refused before either.
fn case() -> impl Strategy<Value = Case> {
    let route = || prop::sample::select(ROUTES);
    prop_oneof![
        425 => (
            prop::sample::select(vec!["POST", "POST", "POST", "POST", "GET", "PUT", "DELETE", "PATCH"]),
            route(),
            prop_oneof![
                3 => prop::sample::select(CONTENT_TYPES).prop_map(|c| Some(c.as_bytes().to_vec())),
                1 => proptest::option::of(fuzz::header_bytes()),
            ],
            prop_oneof![
                3 => fuzz::body_bytes(),
                2 => fuzz::seeded_text(256).prop_map(String::into_bytes),
                1 => fuzz::hostile_string().prop_map(String::into_bytes),
            ],
            headers(),
        )
            .prop_map(|(method, route, content_type, body, headers)| Case::Random {
                method,
                route,
                content_type,
                body,
                headers,
            }),
        300 => (route(), headers()).prop_flat_map(|(route, headers)| {
            let fields = if route == checkout::PAYMENTS_PATH { PAYMENT_FIELDS } else { CREATE_FIELDS };
            prop::collection::vec(fuzz::mutation(fields), 2..5).prop_map(move |mutations| {
                Case::JsonHostile { route, mutations, headers: headers.clone() }
            })
        }),
        100 => (route(), fuzz::json_value(), headers())
            .prop_map(|(route, document, headers)| Case::AnyJson { route, document, headers }),
        170 => (
            prop::collection::vec(prop::bool::weighted(0.3), 2),
            prop::collection::vec(
                (
                    prop_oneof![
                        2 => prop::sample::select(FORM_KEYS).prop_map(str::to_string),
                        1 => fuzz::hostile_string(),
                    ],
                    fuzz::hostile_string(),
                ),
                1..4,
            ),
            headers(),
        )
            .prop_map(|(drop, extra, headers)| Case::FormHostile { drop, extra, headers }),
        2 => route().prop_map(|route| Case::Oversized { route }),
        3 => (
            prop::sample::select(vec![Valid::Json, Valid::Form, Valid::Payment]),
            any::<bool>(),
        )
            .prop_map(|(kind, with_key)| Case::Valid { kind, with_key }),
    ]
}

fn create_document() -> Value {
    json!({
        "line_items": [{"price": "price_mug", "quantity": 1}],
        "mode": "payment",
        "ui_mode": "hosted",
        "customer_email": "jenny@example.com",
        "client_reference_id": "user-42",
        "locale": "fr",
        "metadata": {"cart": "42"}
    })
}

fn payment_document() -> Value {
    json!({
        "line_items": [{"price": "price_mug", "quantity": 2}],
        "customer": "cus_fuzz",
        "metadata": {"cart": "42"}
    })
}

static NEXT: AtomicU64 = AtomicU64::new(0);

fn unique_key() -> Vec<u8> {
    format!(
        "fuzz-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
    .into_bytes()
}

fn request(
    method: &str,
    route: &str,
    content_type: Option<&[u8]>,
    body: impl Into<Body>,
    headers: &Headers,
) -> Request {
    let mut request = http::Request::builder()
        .method(method)
        .uri(route)
        .body(body.into())
        .expect("request");
    let map = request.headers_mut();
    for (name, value) in [
        ("content-type", content_type),
        ("origin", headers.origin.as_deref()),
        ("authorization", headers.authorization.as_deref()),
        ("idempotency-key", headers.idempotency_key.as_deref()),
    ] {
        if let Some(value) = value.and_then(|v| http::HeaderValue::from_bytes(v).ok()) {
            map.insert(name, value);
        }
    }
    request
}

const JSON: Option<&[u8]> = Some(b"application/json");
const FORM: Option<&[u8]> = Some(b"application/x-www-form-urlencoded");

/// The request for `case`, and the status it must get when it is valid.
fn build(case: &Case) -> (Request, Option<u16>) {
    let none = Headers {
        origin: None,
        authorization: None,
        idempotency_key: None,
    };
    match case {
        Case::Random {
            method,
            route,
            content_type,
            body,
            headers,
        } => (
            request(
                method,
                route,
                content_type.as_deref(),
                body.clone(),
                headers,
            ),
            None,
        ),
        Case::JsonHostile {
            route,
            mutations,
            headers,
        } => {
            let mut document = if *route == checkout::PAYMENTS_PATH {
                payment_document()
            } else {
                create_document()
            };
            fuzz::mutate(&mut document, mutations);
            (
                request("POST", route, JSON, document.to_string(), headers),
                None,
            )
        }
        Case::AnyJson {
            route,
            document,
            headers,
        } => (
            request("POST", route, JSON, document.to_string(), headers),
            None,
        ),
        Case::FormHostile {
            drop,
            extra,
            headers,
        } => {
            let mut form = form_urlencoded::Serializer::new(String::new());
            for (pair, dropped) in [("price", "price_mug"), ("quantity", "1")].iter().zip(drop) {
                if !dropped {
                    form.append_pair(pair.0, pair.1);
                }
            }
            for (key, value) in extra {
                form.append_pair(key, value);
            }
            (
                request("POST", "/checkout/sessions", FORM, form.finish(), headers),
                None,
            )
        }
        Case::Oversized { route } => {
            let body = format!("{{\"pad\":\"{}\"}}", "x".repeat(checkout::MAX_BODY_BYTES));
            (request("POST", route, JSON, body, &none), Some(413))
        }
        Case::Valid { kind, with_key } => {
            let mut headers = Headers {
                origin: Some(SHOP.as_bytes().to_vec()),
                authorization: None,
                idempotency_key: with_key.then(unique_key),
            };
            match kind {
                Valid::Json => (
                    request(
                        "POST",
                        "/checkout/sessions",
                        JSON,
                        create_document().to_string(),
                        &headers,
                    ),
                    Some(201),
                ),
                Valid::Form => (
                    request(
                        "POST",
                        "/checkout/sessions",
                        FORM,
                        "price=price_mug&quantity=2",
                        &headers,
                    ),
                    Some(303),
                ),
                Valid::Payment => {
                    headers.origin = None;
                    headers.authorization = Some(format!("Bearer {MERCHANT_KEY}").into_bytes());
                    (
                        request(
                            "POST",
                            checkout::PAYMENTS_PATH,
                            JSON,
                            payment_document().to_string(),
                            &headers,
                        ),
                        Some(201),
                    )
                }
            }
        }
    }
}

/// What the request's headers alone decide, in the handler's order: the method, the origin,
/// the `Authorization`, the size.
fn decided_by_headers(request: &Request) -> Option<(u16, &'static str)> {
    let headers = request.headers();
    if request.method() != http::Method::POST {
        return Some((405, "method_not_allowed"));
    }
    if headers
        .get("origin")
        .is_some_and(|o| o.as_bytes() != SHOP.as_bytes())
    {
        return Some((403, "origin_not_allowed"));
    }
    if headers
        .get("authorization")
        .is_some_and(|a| a.as_bytes() != format!("Bearer {MERCHANT_KEY}").as_bytes())
    {
        return Some((401, "unauthorized"));
    }
    if request.body().len() > checkout::MAX_BODY_BYTES {
        return Some((413, "payload_too_large"));
    }
    None
}

/// Stripe creates whatever it is asked to, each session with its own id.
struct CreatesSessions;

impl wiremock::Respond for CreatesSessions {
    fn respond(&self, _: &wiremock::Request) -> ResponseTemplate {
        let id = format!("cs_test_fuzz{}", NEXT.fetch_add(1, Ordering::Relaxed));
        let mut session = session_json(&id, "hosted");
        session["client_secret"] = json!(format!("{id}_secret_abc"));
        ResponseTemplate::new(200).set_body_json(session)
    }
}

async fn mock_stripe(h: &Harness) {
    Mock::given(method("POST"))
        .and(path("/v1/checkout/sessions"))
        .respond_with(CreatesSessions)
        .mount(&h.stripe)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/prices/price_mug"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "price_mug", "object": "price", "currency": "eur", "unit_amount": 1500,
            "type": "one_time", "active": true,
            "product": {"id": "prod_mug", "object": "product", "name": "Mug"}
        })))
        .mount(&h.stripe)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "pi_created", "object": "payment_intent", "amount": 3000, "currency": "eur",
            "status": "requires_payment_method", "client_secret": "pi_created_secret_abc", "metadata": {}
        })))
        .mount(&h.stripe)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/customer_sessions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "object": "customer_session", "client_secret": "cuss_secret_xyz", "customer": "cus_fuzz",
            "expires_at": unix_now() + 1800
        })))
        .mount(&h.stripe)
        .await;
}

/// What the new successes made, and what was checked against it.
#[derive(Default)]
struct Made {
    sessions: usize,
    payments: usize,
    keys: usize,
    /// The (route, `Idempotency-Key`) of each success: a repeat is answered from the record.
    answered: HashSet<(String, Vec<u8>)>,
    cases: usize,
}

async fn check_made(h: &Harness, made: &Made) -> Result<(), String> {
    let stripe = h.stripe_requests().await;
    let creates = |route: &str| {
        stripe
            .iter()
            .filter(|r| r.method.as_str() == "POST" && r.url.path() == route)
            .count()
    };
    let found = (
        creates("/v1/checkout/sessions"),
        fuzz::count_items(&h.dynamodb, &h.table).await,
        creates("/v1/payment_intents"),
        fuzz::count_items(&h.dynamodb, &h.requests).await,
    );
    let want = (made.sessions, made.sessions, made.payments, made.keys);
    if found == want {
        Ok(())
    } else {
        Err(format!(
            "(Stripe sessions, sessions table, Stripe PaymentIntents, requests table): {found:?}, the new successes made {want:?}"
        ))
    }
}

#[test]
fn any_create_session_or_payment_request() {
    let rt = fuzz::runtime();
    let h = rt.block_on(async {
        let h = Harness::new().await;
        mock_stripe(&h).await;
        h
    });
    let creator: SessionCreator = h.creator(h.config());
    let made = Mutex::new(Made::default());

    proptest!(fuzz::config(CREATE_CASES), |(case in case())| {
        let (request, valid) = build(&case);
        let decided = decided_by_headers(&request);
        let route = request.uri().path().to_string();
        let key = request.headers().get("idempotency-key").map(|k| k.as_bytes().to_vec());
        let response = rt.block_on(checkout::handle(&creator, request));
        let status = response.status().as_u16();
        let body: &[u8] = response.body().as_ref();
        prop_assert!(
            [201, 303].contains(&status) || documented(status).is_some(),
            "undocumented {status}: {:?}", String::from_utf8_lossy(body)
        );
        prop_assert!(status < 500, "Stripe and DynamoDB are up: {status} {:?}", String::from_utf8_lossy(body));
        let code = match documented(status) {
            Some(codes) => fuzz::documented_error(body, codes).map_err(TestCaseError::fail)?,
            None => String::new(),
        };
        if let Some((want, want_code)) = decided {
            prop_assert_eq!((status, code.as_str()), (want, want_code));
        }
        if let Some(want) = valid {
            prop_assert_eq!(status, want, "{:?}", String::from_utf8_lossy(body));
        }
        let mut made = made.lock().unwrap();
        if [201, 303].contains(&status) {
            let new = key.as_ref().is_none_or(|key| made.answered.insert((route.clone(), key.clone())));
            if new {
                if route == checkout::PAYMENTS_PATH {
                    made.payments += 1;
                } else {
                    made.sessions += 1;
                }
                made.keys += usize::from(key.is_some());
            }
        }
        made.cases += 1;
        // Checked as the cases go: nothing refused has made anything.
        if made.cases.is_multiple_of(5_000) {
            rt.block_on(check_made(&h, &made)).map_err(TestCaseError::fail)?;
        }
    });

    let made = made.lock().unwrap();
    rt.block_on(check_made(&h, &made)).unwrap();
    assert!(
        made.sessions > 0 && made.payments > 0,
        "valid requests were answered"
    );
}
