//! The API routes (`/v1/…`), answering in the bundle's own `checkout_core::stripe` types.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use checkout_core::stripe::{PaymentIntent, PaymentStatus};
use http::{HeaderValue, Method, Response, StatusCode};
use serde_json::{Value, json};

use crate::sessions::Expand;
use crate::{Answer, Replay, Simulator, json, random_suffix, stripe_error};

pub(crate) type Pairs = Vec<(String, String)>;

fn pairs(raw: &[u8]) -> Pairs {
    form_urlencoded::parse(raw).into_owned().collect()
}

pub(crate) fn param<'a>(pairs: &'a Pairs, name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

fn expands(pairs: &Pairs, what: &str) -> bool {
    pairs.iter().any(|(k, v)| k == "expand[]" && v == what)
}

#[derive(Debug)]
/// A Stripe error, answered as `{"error": {"type", "code", "message", "param"}}`.
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub code: Option<&'static str>,
    pub message: String,
    pub param: Option<String>,
}

impl ApiError {
    fn answer(&self) -> Answer {
        stripe_error(
            self.status,
            "invalid_request_error",
            self.code,
            &self.message,
            self.param.as_deref(),
        )
    }
}

pub(crate) fn bad_request(message: &str, param: &str) -> ApiError {
    ApiError {
        status: StatusCode::BAD_REQUEST,
        code: Some("parameter_invalid"),
        message: message.into(),
        param: Some(param.into()),
    }
}

pub(crate) fn missing(kind: &str, id: &str) -> ApiError {
    ApiError {
        status: StatusCode::NOT_FOUND,
        code: Some("resource_missing"),
        message: format!("No such {kind}: '{id}'"),
        param: Some("id".into()),
    }
}

/// `parameter_invalid_integer`, as Stripe answers a non-integer where it wants one.
pub(crate) fn invalid_integer(param: &str, value: &str) -> ApiError {
    ApiError {
        status: StatusCode::BAD_REQUEST,
        code: Some("parameter_invalid_integer"),
        message: format!("Invalid integer: {value}"),
        param: Some(param.into()),
    }
}

/// `limit` (1..=100, default 10) and `starting_after`, as every Stripe list.
pub(crate) fn page(all: Vec<Value>, query: &Pairs, url: &str) -> Result<Value, ApiError> {
    page_where(all, |_| true, query, url)
}

/// As [`page`], listing only the objects `keep` accepts: the filter applies before paging, so
/// `has_more` counts kept objects only. `starting_after` is a position in the whole list, so a
/// cursor that the filter leaves out still works.
fn page_where(
    all: Vec<Value>,
    keep: impl Fn(&Value) -> bool,
    query: &Pairs,
    url: &str,
) -> Result<Value, ApiError> {
    let limit = match param(query, "limit").map(str::parse::<usize>) {
        None => 10,
        Some(Ok(n)) if (1..=100).contains(&n) => n,
        Some(_) => return Err(bad_request("limit must be between 1 and 100", "limit")),
    };
    let start = match param(query, "starting_after") {
        None => 0,
        Some(after) => match all.iter().position(|o| o["id"] == after) {
            Some(i) => i + 1,
            None => return Err(missing("object", after)),
        },
    };
    let rest: Vec<&Value> = all[start.min(all.len())..]
        .iter()
        .filter(|o| keep(o))
        .collect();
    Ok(json!({
        "object": "list",
        "url": url,
        "has_more": rest.len() > limit,
        "data": rest.into_iter().take(limit).cloned().collect::<Vec<_>>(),
    }))
}

/// Which event types `GET /v1/events` lists.
#[derive(Debug, PartialEq, Eq)]
enum Types {
    Any,
    /// `type`: one name, or a group as `checkout.session.*`.
    Pattern(String),
    /// `types[]`: any of these exact names.
    AnyOf(Vec<String>),
}

/// The filters of `GET /v1/events`: the type(s), and `created` as inclusive bounds.
#[derive(Debug, PartialEq, Eq)]
struct EventFilter {
    types: Types,
    since: i64,
    until: i64,
}

/// Stripe takes at most this many `types[]`.
const MAX_TYPES: usize = 20;

impl EventFilter {
    /// `type` or `types[]` (also `types[0]`, `types[1]`…, as Stripe's array encoding allows),
    /// not both; `created=<n>` or `created[gt|gte|lt|lte]=<n>`, unix seconds.
    fn parse(query: &Pairs) -> Result<Self, ApiError> {
        let listed: Vec<String> = query
            .iter()
            .filter(|(k, v)| {
                !v.is_empty()
                    && k.strip_prefix("types[")
                        .and_then(|k| k.strip_suffix(']'))
                        .is_some_and(|i| i.bytes().all(|b| b.is_ascii_digit()))
            })
            .map(|(_, v)| v.clone())
            .collect();
        let types = match (param(query, "type"), listed.is_empty()) {
            (Some(_), false) => {
                return Err(bad_request(
                    "You may pass either type or types, but not both.",
                    "types",
                ));
            }
            (Some(one), true) => Types::Pattern(one.to_string()),
            (None, true) => Types::Any,
            (None, false) if listed.len() > MAX_TYPES => {
                return Err(bad_request(
                    &format!("types may contain at most {MAX_TYPES} event types"),
                    "types",
                ));
            }
            (None, false) => Types::AnyOf(listed),
        };
        let (mut since, mut until) = (i64::MIN, i64::MAX);
        for (key, value) in query {
            let bound = match key.as_str() {
                "created" => None,
                other => match other.strip_prefix("created[") {
                    Some(rest) => Some(rest.strip_suffix(']').unwrap_or_default()),
                    None => continue,
                },
            };
            if value.is_empty() {
                continue;
            }
            let n: i64 = value.parse().map_err(|_| invalid_integer(key, value))?;
            match bound {
                None => {
                    since = since.max(n);
                    until = until.min(n);
                }
                Some("gte") => since = since.max(n),
                Some("gt") => since = since.max(n.saturating_add(1)),
                Some("lte") => until = until.min(n),
                Some("lt") => until = until.min(n.saturating_sub(1)),
                Some(_) => {
                    return Err(ApiError {
                        status: StatusCode::BAD_REQUEST,
                        code: Some("parameter_unknown"),
                        message: format!("Received unknown parameter: {key}"),
                        param: Some(key.clone()),
                    });
                }
            }
        }
        Ok(Self {
            types,
            since,
            until,
        })
    }

    fn keeps(&self, event: &Value) -> bool {
        let kind = event["type"].as_str().unwrap_or_default();
        let typed = match &self.types {
            Types::Any => true,
            Types::Pattern(pattern) => match pattern.strip_suffix(".*") {
                Some(group) => kind
                    .strip_prefix(group)
                    .is_some_and(|rest| rest.starts_with('.')),
                None => kind == pattern,
            },
            Types::AnyOf(names) => names.iter().any(|n| n == kind),
        };
        typed
            && event["created"]
                .as_i64()
                .is_some_and(|t| (self.since..=self.until).contains(&t))
    }
}

impl Simulator {
    pub(crate) fn api(self: &Arc<Self>, request: &http::Request<Bytes>) -> Answer {
        let expected = format!("Bearer {}", self.config.api_key.expose());
        let authorised = request
            .headers()
            .get(http::header::AUTHORIZATION)
            .is_some_and(|v| v.as_bytes() == expected.as_bytes());
        if !authorised {
            return stripe_error(
                StatusCode::UNAUTHORIZED,
                "invalid_request_error",
                None,
                "Invalid API Key provided",
                None,
            );
        }
        let account = request
            .headers()
            .get("stripe-account")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let key = request
            .headers()
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .filter(|_| request.method() == Method::POST)
            .map(str::to_string);
        let fingerprint = format!(
            "{} {}?{}",
            request.uri().path(),
            request.uri().query().unwrap_or_default(),
            String::from_utf8_lossy(request.body())
        );
        if let Some(key) = &key {
            let mut state = self.lock();
            let slot = (account.clone(), key.clone());
            match state.idempotency.get(&slot).cloned() {
                None => {
                    state.idempotency.insert(
                        slot,
                        Replay {
                            fingerprint: fingerprint.clone(),
                            answer: None,
                        },
                    );
                }
                Some(replay) if replay.fingerprint != fingerprint => {
                    return stripe_error(
                        StatusCode::BAD_REQUEST,
                        "idempotency_error",
                        None,
                        &format!(
                            "Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '{key}' if you meant to execute a different request."
                        ),
                        None,
                    );
                }
                Some(Replay { answer: None, .. }) => {
                    return stripe_error(
                        StatusCode::CONFLICT,
                        "idempotency_error",
                        Some("idempotency_key_in_use"),
                        "There is currently another in-progress request using this Idempotent Key. Please try again later.",
                        None,
                    );
                }
                Some(Replay {
                    answer: Some((status, body)),
                    ..
                }) => {
                    let mut response = Response::new(body);
                    *response.status_mut() = status;
                    let headers = response.headers_mut();
                    headers.insert(
                        http::header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    );
                    headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
                    return response;
                }
            }
        }
        let query = pairs(request.uri().query().unwrap_or_default().as_bytes());
        let body = pairs(request.body());
        let (status, value) = match self.route(
            request.method(),
            request.uri().path(),
            &query,
            &body,
            account.as_deref(),
        ) {
            Ok(value) => (StatusCode::OK, value),
            Err(error) => return self.remember(key, account, fingerprint, error.answer()),
        };
        let response = json(status, &value);
        self.remember(key, account, fingerprint, response)
    }

    /// Saves a successful answer for replay. A request refused while checking its parameters
    /// is not saved, as on Stripe, so the same key can be used again once they are fixed.
    fn remember(
        &self,
        key: Option<String>,
        account: Option<String>,
        fingerprint: String,
        response: Answer,
    ) -> Answer {
        let Some(key) = key else { return response };
        let mut state = self.lock();
        if response.status().is_success() {
            state.idempotency.insert(
                (account, key),
                Replay {
                    fingerprint,
                    answer: Some((response.status(), response.body().clone())),
                },
            );
        } else {
            state.idempotency.remove(&(account, key));
        }
        response
    }

    fn route(
        self: &Arc<Self>,
        method: &Method,
        path: &str,
        query: &Pairs,
        body: &Pairs,
        account: Option<&str>,
    ) -> Result<Value, ApiError> {
        let segments: Vec<&str> = path.trim_start_matches("/v1/").split('/').collect();
        match (method, segments.as_slice()) {
            (&Method::POST, ["checkout", "sessions"]) => self.create_session(body, account),
            (&Method::GET, ["checkout", "sessions"]) => self.list_sessions(query, account),
            (&Method::GET, ["checkout", "sessions", id]) => {
                let stored = self.session(id, account)?;
                Ok(self.session_json(&stored, Expand::of(query)))
            }
            (&Method::POST, ["checkout", "sessions", id, "expire"]) => {
                self.expire_session(id, body, account)
            }
            (&Method::GET, ["shipping_rates", id]) => self.shipping_rate_json(id),
            (&Method::GET, ["checkout", "sessions", id, "line_items"]) => {
                let stored = self.session(id, account)?;
                let product = expands(query, "data.price.product");
                let items = stored
                    .items
                    .iter()
                    .map(|i| self.item_json(i, product))
                    .collect();
                page(items, query, path)
            }
            (&Method::GET, ["prices", id]) => self.price(id, expands(query, "product")),
            (&Method::POST, ["payment_intents"]) => self.create_payment_intent(body, account),
            (&Method::GET, ["payment_intents", id]) => self.payment_intent(id, account),
            (&Method::POST, ["customer_sessions"]) => self.create_customer_session(body, account),
            (&Method::GET, ["payment_methods", id]) => {
                self.billing_object("payment_method", id, account)
            }
            (&Method::GET, ["subscriptions", id]) => {
                self.billing_object("subscription", id, account)
            }
            (&Method::GET, ["invoices", id]) => self.billing_object("invoice", id, account),
            (&Method::GET, ["invoice_payments"]) => self.list_invoice_payments(query, account),
            (&Method::GET, ["invoice_payments", id]) => {
                self.billing_object("invoice_payment", id, account)
            }
            (&Method::GET, ["charges", id]) => self.billing_object("charge", id, account),
            (&Method::GET, ["refunds", id]) => self.billing_object("refund", id, account),
            (&Method::GET, ["disputes", id]) => self.billing_object("dispute", id, account),
            (&Method::GET, ["customers", id]) => self.billing_object("customer", id, account),
            (&Method::POST, ["promotion_codes"]) => Ok(self.create_promotion_code(body, account)),
            (&Method::GET, ["events"]) => {
                let filter = EventFilter::parse(query)?;
                let events = self
                    .lock()
                    .events
                    .iter()
                    .rev()
                    .filter(|(a, _)| a.as_deref() == account)
                    .map(|(_, e)| e.clone())
                    .collect();
                page_where(events, |e| filter.keeps(e), query, path)
            }
            _ => Err(ApiError {
                status: StatusCode::NOT_FOUND,
                code: None,
                message: format!("Unrecognized request URL ({method}: {path})"),
                param: None,
            }),
        }
    }

    /// A catalog price; with `expand[]=product`, its product as an object (id, name), as
    /// Stripe expands it.
    fn price(&self, id: &str, expand_product: bool) -> Result<Value, ApiError> {
        let price = self.catalog_price(id).ok_or_else(|| missing("price", id))?;
        let mut json = price.json();
        if expand_product {
            json["product"] = serde_json::json!({
                "id": price.product, "object": "product", "name": price.name, "active": true,
                "livemode": false, "metadata": {},
            });
        }
        Ok(json)
    }

    /// An invoice's PaymentIntent is kept with the billing objects; a payment-mode session's
    /// is read off the session (its state follows the session's payment status).
    fn payment_intent(&self, id: &str, account: Option<&str>) -> Result<Value, ApiError> {
        let state = self.lock();
        if let Some(intent) = state.objects.scoped("payment_intent", id, account) {
            return Ok(intent.clone());
        }
        let stored = state
            .sessions
            .values()
            .filter(|s| s.account.as_deref() == account)
            .find(|s| {
                s.session
                    .payment_intent
                    .as_ref()
                    .is_some_and(|p| p.as_str() == id)
            })
            .ok_or_else(|| missing("payment_intent", id))?;
        let paid = stored.session.payment_status == PaymentStatus::Paid;
        let amount = stored.session.amount_total.unwrap_or_default();
        let intent = PaymentIntent {
            id: id.parse().map_err(|_| missing("payment_intent", id))?,
            amount,
            amount_received: if paid { amount } else { 0 },
            currency: stored
                .session
                .currency
                .clone()
                .ok_or_else(|| missing("payment_intent", id))?,
            status: if paid { "succeeded" } else { "processing" }.into(),
            customer: stored.session.customer.clone(),
            receipt_email: stored
                .session
                .customer_details
                .as_ref()
                .and_then(|d| d.email.clone()),
            description: None,
            metadata: BTreeMap::new(),
            // Both are set on the answer below, from the JSON shape.
            client_secret: None,
            latest_charge: None,
        };
        let typed = serde_json::to_value(intent).expect("a PaymentIntent serialises");
        let latest_charge = state
            .objects
            .find("charge", "payment_intent", id)
            .map(|c| c.object["id"].clone());
        let mut value = crate::charges::payment_intent_json(&crate::charges::Intent {
            id,
            amount,
            currency: &typed["currency"],
            customer: &typed["customer"],
            status: if paid { "succeeded" } else { "processing" },
            created: stored.session.created.unwrap_or_default(),
            description: None,
            application_fee_amount: stored.application_fee_amount,
        });
        value["amount_received"] = typed["amount_received"].clone();
        value["setup_future_usage"] = stored.options.setup_future_usage.into();
        value["receipt_email"] = typed["receipt_email"].clone();
        value["latest_charge"] = latest_charge.unwrap_or(Value::Null);
        Ok(value)
    }

    /// A billing object as the API returns it: scoped to its account, `resource_missing`
    /// otherwise, as a session is.
    fn billing_object(
        &self,
        kind: &str,
        id: &str,
        account: Option<&str>,
    ) -> Result<Value, ApiError> {
        self.lock()
            .objects
            .scoped(kind, id, account)
            .cloned()
            .ok_or_else(|| missing(kind, id))
    }

    /// `GET /v1/invoice_payments?invoice=…` (or `payment[payment_intent]=…`): at the pinned
    /// version, the only link from an invoice to the PaymentIntent that paid it.
    fn list_invoice_payments(
        &self,
        query: &Pairs,
        account: Option<&str>,
    ) -> Result<Value, ApiError> {
        let invoice = param(query, "invoice");
        let intent = param(query, "payment[payment_intent]");
        let all = self
            .lock()
            .objects
            .all("invoice_payment")
            .into_iter()
            .filter(|o| o.account.as_deref() == account)
            .map(|o| o.object.clone())
            .collect();
        page_where(
            all,
            |p| {
                invoice.is_none_or(|i| p["invoice"] == i)
                    && intent.is_none_or(|i| p["payment"]["payment_intent"] == i)
            },
            query,
            "/v1/invoice_payments",
        )
    }

    fn create_promotion_code(&self, form: &Pairs, account: Option<&str>) -> Value {
        let code = json!({
            "id": format!("promo_{}", random_suffix(24)),
            "object": "promotion_code",
            "code": random_suffix(8).to_uppercase(),
            "coupon": {"id": param(form, "coupon"), "object": "coupon"},
            "max_redemptions": param(form, "max_redemptions").and_then(|m| m.parse::<i64>().ok()),
            "expires_at": param(form, "expires_at").and_then(|t| t.parse::<i64>().ok()),
            "customer": param(form, "customer"),
            "active": true,
            "livemode": false,
        });
        self.lock()
            .promotion_codes
            .push((account.map(str::to_string), code.clone()));
        code
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(raw: &str) -> Pairs {
        pairs(raw.as_bytes())
    }

    fn event(kind: &str, created: i64) -> Value {
        json!({"id": format!("evt_{kind}_{created}"), "type": kind, "created": created})
    }

    #[test]
    fn created_bounds_become_inclusive_and_intersect() {
        let filter =
            EventFilter::parse(&query("created[gt]=10&created[lt]=20&created[gte]=5")).unwrap();
        assert_eq!((filter.since, filter.until), (11, 19));
        let exact = EventFilter::parse(&query("created=15&created[lte]=30")).unwrap();
        assert_eq!((exact.since, exact.until), (15, 15));
        let none = EventFilter::parse(&query("limit=3")).unwrap();
        assert_eq!(
            none,
            EventFilter {
                types: Types::Any,
                since: i64::MIN,
                until: i64::MAX
            }
        );
    }

    #[test]
    fn bad_created_and_type_parameters_are_refused_with_their_param() {
        for (raw, blamed) in [
            ("created[gte]=soon", "created[gte]"),
            ("created=1.5", "created"),
            ("created[after]=1", "created[after]"),
            ("type=a.b&types[]=a.c", "types"),
        ] {
            let error = EventFilter::parse(&query(raw)).unwrap_err();
            assert_eq!(error.status, StatusCode::BAD_REQUEST, "{raw}");
            assert_eq!(error.param.as_deref(), Some(blamed), "{raw}");
        }
        let many: Vec<String> = (0..=MAX_TYPES).map(|i| format!("types[]=t.{i}")).collect();
        assert!(EventFilter::parse(&query(&many.join("&"))).is_err());
    }

    #[test]
    fn types_match_exactly_and_type_groups_on_a_dot() {
        let completed = event("checkout.session.completed", 1);
        let expired = event("checkout.session.expired", 1);
        let keeps = |raw: &str, e: &Value| EventFilter::parse(&query(raw)).unwrap().keeps(e);
        assert!(keeps(
            "types[]=checkout.session.expired&types[]=x.y",
            &expired
        ));
        assert!(keeps(
            "types[0]=x.y&types[1]=checkout.session.expired",
            &expired
        ));
        assert!(!keeps("types[]=checkout.session.expired", &completed));
        assert!(
            !keeps("types[]=checkout.session.*", &completed),
            "types[] is exact"
        );
        assert!(keeps("type=checkout.session.*", &completed));
        assert!(keeps("type=checkout.*", &completed));
        assert!(
            !keeps("type=checkout.sess.*", &completed),
            "a group ends on a dot"
        );
        assert!(!keeps("type=checkout.session.completed.*", &completed));
        assert!(keeps("type=checkout.session.completed", &completed));
        assert!(!keeps("type=checkout.session", &completed));
    }

    #[test]
    fn filtering_happens_before_paging() {
        let all: Vec<Value> = (0..6)
            .rev()
            .map(|t| event(if t % 2 == 0 { "a.even" } else { "a.odd" }, t))
            .collect();
        let keep = |e: &Value| e["type"] == "a.even";
        let first = page_where(all.clone(), keep, &query("limit=2"), "/v1/events").unwrap();
        let ids: Vec<&str> = first["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["evt_a.even_4", "evt_a.even_2"]);
        assert_eq!(first["has_more"], true);
        let last = page_where(
            all.clone(),
            keep,
            &query("limit=2&starting_after=evt_a.even_2"),
            "/v1/events",
        )
        .unwrap();
        assert_eq!(last["data"][0]["id"], "evt_a.even_0");
        assert_eq!(last["has_more"], false);
        // A cursor the filter leaves out is still a position in the list.
        let after_odd = page_where(
            all,
            keep,
            &query("starting_after=evt_a.odd_3"),
            "/v1/events",
        )
        .unwrap();
        assert_eq!(after_odd["data"].as_array().unwrap().len(), 2);
    }
}
