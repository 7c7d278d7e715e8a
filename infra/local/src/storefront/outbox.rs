//! The outbox (`/dev/outbox`, development only): the emails moto's SES accepted, each whole
//! on its own page (`/dev/outbox/{n}`), the recovery decisions, and the orders (with where
//! they ship, how and their tax), subscriptions and access tables.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use checkout_core::clock::iso8601;
use checkout_core::money::Money;
use checkout_core::store::{
    AccessRecord, AccessState, EventOutcome, OrderDetails, OrderRecord, SubscriptionRecord,
};
use http::StatusCode;
use http_body_util::BodyExt;
use lambda_http::{Body, Response};
use serde::Serialize;
use serde_json::{Value, json};

use super::{Storefront, is_http_url};

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
    /// Where a physical order goes (`details.shipping.country`).
    ship_to: Option<String>,
    /// The rate chosen and what it cost (`details.shipping`).
    shipping: Option<String>,
    /// Each tax line (`details.totals.taxes`), or the tax amount without a breakdown.
    tax: Option<String>,
}

impl Storefront {
    /// `/dev/outbox`'s tables.
    pub(super) async fn outbox(&self) -> Value {
        json!({
            "emails": self.emails().await,
            "decisions": self.decisions().await,
            "orders": self.orders().await,
            "subscriptions": self.subscriptions().await,
            "access": self.access().await,
        })
    }

    /// `/dev/outbox/{n}`: one email, whole.
    pub(super) async fn email_page(&self, n: &str) -> Response<Body> {
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
            .map(|order| (order.updated_at, order_view(order)))
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
                    (Some(AccessState::Granted), Some(until)) => {
                        format!("granted until {}", iso8601(until))
                    }
                    (Some(AccessState::Granted), None) => "granted".into(),
                    (Some(AccessState::Revoked), _) => "revoked".into(),
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

fn order_view(order: OrderRecord) -> OrderView {
    let (ship_to, shipping, tax) = order.details.as_ref().map_or((None, None, None), |d| {
        let money = |amount| {
            Money {
                amount,
                currency: d.currency.as_ref(),
            }
            .to_string()
        };
        let shipping = d.shipping.as_ref();
        let rate = shipping
            .and_then(|s| s.rate_name.clone().or_else(|| s.rate.clone()))
            .map(|rate| format!("{rate}, {}", money(shipping.map_or(0, |s| s.amount))));
        (
            shipping.and_then(|s| s.country.clone()),
            rate,
            taxes(d, money),
        )
    });
    OrderView {
        state: order.status(),
        id: order.order_id,
        payment: order
            .payment_status
            .and_then(|p| serde_json::to_value(p).ok())
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        attempts: order.attempts,
        ship_to,
        shipping,
        tax,
    }
}

/// `VAT 20% 13.40 EUR`, one per tax line; the amount alone when there is no breakdown.
fn taxes(details: &OrderDetails, money: impl Fn(i64) -> String) -> Option<String> {
    let totals = &details.totals;
    if !totals.taxes.is_empty() {
        let lines: Vec<String> = totals
            .taxes
            .iter()
            .map(|t| format!("{} {}", t.label, money(t.amount)))
            .collect();
        return Some(lines.join(", "));
    }
    (totals.amount_tax != 0).then(|| money(totals.amount_tax))
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

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn an_orders_row_shows_where_it_ships_how_and_its_tax() {
        let order: OrderRecord = serde_json::from_value(json!({
            "order_id": "cs_test_1",
            "state": "fulfilled",
            "fulfilled_at": 1,
            "updated_at": 1,
            "details": {
                "line_items": [],
                "currency": "eur",
                "amount_subtotal": 5500,
                "amount_total": 8040,
                "shipping": {
                    "address": ["12 rue des Lilas", "75011 Paris", "FR"],
                    "country": "FR",
                    "rate": "shr_express",
                    "rate_name": "Express shipping",
                    "amount": 1440
                },
                "totals": {
                    "amount_tax": 1340,
                    "amount_shipping": 1200,
                    "taxes": [{"label": "VAT 20%", "amount": 1340}]
                }
            }
        }))
        .expect("an order record");
        let view = order_view(order);
        assert_eq!(view.ship_to.as_deref(), Some("FR"));
        assert_eq!(
            view.shipping.as_deref(),
            Some("Express shipping, 14.40 EUR")
        );
        assert_eq!(view.tax.as_deref(), Some("VAT 20% 13.40 EUR"));

        let digital: OrderRecord = serde_json::from_value(json!({
            "order_id": "cs_test_2",
            "state": "fulfilled",
            "fulfilled_at": 1,
            "updated_at": 1,
            "details": {"line_items": [], "amount_subtotal": 900, "amount_total": 900}
        }))
        .expect("an order record");
        let view = order_view(digital);
        assert_eq!((view.ship_to, view.shipping, view.tax), (None, None, None));
    }
}
