//! The developer's billing controls: what happens after the sale, on demand. A page
//! (`/dev/billing`, one plain form) lists subscriptions and charges with buttons to renew,
//! fail or hold a renewal, cancel, refund and dispute; the same actions are methods here for
//! Rust tests. The hosted invoice page (`/i/{id}`, each invoice's `hosted_invoice_url`) lets the
//! customer pay an open invoice, as Stripe's does after a failed or held renewal.

use std::sync::Arc;

use bytes::Bytes;
use checkout_core::clock::iso8601;
use checkout_core::money::{Currency, Money};
use http::{HeaderValue, Response, StatusCode, header};
use serde::Serialize;
use serde_json::{Value, json};

use crate::charges::{self, Done};
use crate::delivery::Delivery;
use crate::disputes;
use crate::invoices::Outcome;
use crate::objects::{DevError, Owned};
use crate::{Answer, Simulator, unix_now};

/// What the developer's controls can do, to the object whose id goes with it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Control {
    Renew,
    FailRenewal,
    RequireAction,
    Cancel,
    CancelAtPeriodEnd,
    PayInvoice,
    Refund(Option<i64>),
    Dispute,
    CloseDispute { won: bool },
}

impl Simulator {
    /// Does it under the lock, then sends its events under the object's account.
    fn perform(
        self: &Arc<Self>,
        action: Control,
        id: &str,
        delivery: Delivery,
    ) -> Result<String, DevError> {
        let now = unix_now();
        let done: Done = {
            let mut state = self.lock();
            let objects = &mut state.objects;
            match action {
                Control::Renew => self.renew_now(objects, id, now),
                Control::FailRenewal => self.renewal_not_paid(objects, id, Outcome::Failed, now),
                Control::RequireAction => {
                    self.renewal_not_paid(objects, id, Outcome::ActionRequired, now)
                }
                Control::Cancel => self.cancel_now(objects, id, now),
                Control::CancelAtPeriodEnd => self.cancel_at_end(objects, id, now),
                Control::PayInvoice => self.pay_invoice_now(objects, id, now),
                Control::Refund(amount) => charges::refund(objects, id, amount, now),
                Control::Dispute => disputes::open_dispute(objects, id, now),
                Control::CloseDispute { won } => disputes::close_dispute(objects, id, won),
            }?
        };
        self.send_events(done.account.as_deref(), done.events, delivery);
        Ok(done.id)
    }

    /// Renews the subscription for another 30 days: a paid `subscription_cycle` invoice, a
    /// new PaymentIntent and charge; `invoice.created`, `invoice.finalized`, `invoice.paid`,
    /// `invoice.payment_succeeded`, `payment_intent.succeeded`, `charge.succeeded`,
    /// `customer.subscription.updated`. If its latest invoice is open (a failed renewal) that
    /// invoice is paid instead, the period unchanged; if it is set to cancel at the period's
    /// end, it ends (`customer.subscription.deleted`). Returns the invoice's id (the
    /// subscription's when it ended).
    ///
    /// # Errors
    /// No such subscription, or it has ended.
    pub fn renew(self: &Arc<Self>, subscription: &str) -> Result<String, DevError> {
        self.perform(Control::Renew, subscription, Delivery::default())
    }

    /// The renewal's payment fails: a new period's invoice (`invoice.created`,
    /// `invoice.finalized`), or the open one attempted again, stays `open` with
    /// `attempt_count` up and `next_payment_attempt` set; `invoice.payment_failed`; the
    /// subscription `past_due` (`customer.subscription.updated` when that changed it).
    /// Returns the invoice's id.
    ///
    /// # Errors
    /// No such subscription, or it has ended.
    pub fn fail_renewal(self: &Arc<Self>, subscription: &str) -> Result<String, DevError> {
        self.perform(Control::FailRenewal, subscription, Delivery::default())
    }

    /// As [`Self::fail_renewal`], but the bank asks the customer to authenticate:
    /// `invoice.payment_action_required` (its `hosted_invoice_url` is where they pay), the
    /// PaymentIntent `requires_action`. Returns the invoice's id.
    ///
    /// # Errors
    /// No such subscription, or it has ended.
    pub fn require_action(self: &Arc<Self>, subscription: &str) -> Result<String, DevError> {
        self.perform(Control::RequireAction, subscription, Delivery::default())
    }

    /// Cancels now: `canceled`, `canceled_at`, `ended_at`; `customer.subscription.deleted`.
    /// Returns the subscription's id.
    ///
    /// # Errors
    /// No such subscription, or it has ended already.
    pub fn cancel_subscription(self: &Arc<Self>, subscription: &str) -> Result<String, DevError> {
        self.perform(Control::Cancel, subscription, Delivery::default())
    }

    /// Cancels at the period's end: `cancel_at_period_end: true`, `cancel_at`;
    /// `customer.subscription.updated`. Returns the subscription's id.
    ///
    /// # Errors
    /// No such subscription, it has ended, or it is already set to cancel.
    pub fn cancel_at_period_end(self: &Arc<Self>, subscription: &str) -> Result<String, DevError> {
        self.perform(
            Control::CancelAtPeriodEnd,
            subscription,
            Delivery::default(),
        )
    }

    /// The customer pays an open invoice from its hosted page: `invoice.paid`,
    /// `invoice.payment_succeeded`, `payment_intent.succeeded`, `charge.succeeded`, and
    /// `customer.subscription.updated` if the subscription was `past_due`. Returns its id.
    ///
    /// # Errors
    /// No such invoice, or it is not open.
    pub fn pay_invoice(self: &Arc<Self>, invoice: &str) -> Result<String, DevError> {
        self.perform(Control::PayInvoice, invoice, Delivery::default())
    }

    /// Refunds the charge in full (`None`) or in part; `charge.refunded`. Returns the
    /// refund's id (`re_…`).
    ///
    /// # Errors
    /// No such charge, it is refunded already or under an open dispute, or the amount is
    /// not between 1 and what is left.
    pub fn refund(self: &Arc<Self>, charge: &str, amount: Option<i64>) -> Result<String, DevError> {
        self.perform(Control::Refund(amount), charge, Delivery::default())
    }

    /// The cardholder disputes the charge: `charge.dispute.created`. Returns the dispute's
    /// id (`dp_…`).
    ///
    /// # Errors
    /// No such charge, or it has been disputed already.
    pub fn open_dispute(self: &Arc<Self>, charge: &str) -> Result<String, DevError> {
        self.perform(Control::Dispute, charge, Delivery::default())
    }

    /// The dispute is decided, `won` or lost: `charge.dispute.closed`. Returns its id.
    ///
    /// # Errors
    /// No such dispute, or it is closed already.
    pub fn close_dispute(self: &Arc<Self>, dispute: &str, won: bool) -> Result<String, DevError> {
        self.perform(Control::CloseDispute { won }, dispute, Delivery::default())
    }

    /// The subscription a paid subscription-mode session started.
    #[must_use]
    pub fn subscription_for_session(&self, session: &str) -> Option<String> {
        self.lock()
            .sessions
            .get(session)?
            .session
            .subscription
            .clone()
    }

    /// The charge of a PaymentIntent (a payment-mode session's or an invoice's), or its
    /// latest one (`latest_charge`) when it has had several attempts.
    #[must_use]
    pub fn charge_for_payment_intent(&self, payment_intent: &str) -> Option<String> {
        let state = self.lock();
        let latest = state
            .objects
            .get("payment_intent", payment_intent)
            .and_then(|pi| pi.object["latest_charge"].as_str());
        if let Some(latest) = latest {
            return Some(latest.to_string());
        }
        let charge = state
            .objects
            .find("charge", "payment_intent", payment_intent)?;
        charge.object["id"].as_str().map(str::to_string)
    }

    /// Any object the simulator keeps (`cus_`, `sub_`, `in_`, `pi_` of an invoice, `ch_`,
    /// `re_`, `dp_`…) as the API would return it, whatever its account.
    #[must_use]
    pub fn object(&self, id: &str) -> Option<Value> {
        self.lock().objects.by_id(id).map(|o| o.object.clone())
    }
}

#[derive(Serialize)]
struct SubscriptionView {
    id: String,
    account: Option<String>,
    customer: String,
    status: String,
    period_end: String,
    cancel_at_period_end: bool,
    invoice: Option<String>,
    invoice_status: String,
    live: bool,
}

#[derive(Serialize)]
struct ChargeView {
    id: String,
    account: Option<String>,
    /// `succeeded`, or a Payment Element attempt's `pending` or `failed` (no controls).
    status: String,
    amount: String,
    refunded: String,
    fully_refunded: bool,
    dispute: Option<String>,
    dispute_status: String,
}

fn text(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_string()
}

fn date(value: &Value) -> String {
    value
        .as_i64()
        .map(|t| iso8601(t)[..10].to_string())
        .unwrap_or_default()
}

fn money(amount: &Value, currency: &Value) -> String {
    let amount = amount.as_i64().unwrap_or_default();
    match currency.as_str().and_then(|c| c.parse::<Currency>().ok()) {
        Some(c) => Money::new(amount, &c).to_string(),
        None => amount.to_string(),
    }
}

fn subscription_view(owned: &Owned, invoice: Option<&Value>) -> SubscriptionView {
    let s = &owned.object;
    let status = text(&s["status"]);
    SubscriptionView {
        id: text(&s["id"]),
        account: owned.account.clone(),
        customer: text(&s["customer"]),
        period_end: date(&crate::subscriptions::period_end(s)),
        cancel_at_period_end: s["cancel_at_period_end"] == true,
        invoice: s["latest_invoice"].as_str().map(str::to_string),
        invoice_status: invoice.map(|i| text(&i["status"])).unwrap_or_default(),
        live: !matches!(status.as_str(), "canceled" | "incomplete_expired"),
        status,
    }
}

fn charge_view(owned: &Owned, dispute: Option<&Value>) -> ChargeView {
    let c = &owned.object;
    ChargeView {
        id: text(&c["id"]),
        account: owned.account.clone(),
        status: text(&c["status"]),
        amount: money(&c["amount"], &c["currency"]),
        refunded: money(&c["amount_refunded"], &c["currency"]),
        fully_refunded: c["refunded"] == true,
        dispute: dispute.map(|d| text(&d["id"])),
        dispute_status: dispute.map(|d| text(&d["status"])).unwrap_or_default(),
    }
}

fn see_other(location: &str) -> Answer {
    let mut response = Response::new(Bytes::new());
    *response.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

impl Simulator {
    /// `GET /dev/billing`: every subscription and charge, newest first, with its controls.
    pub(crate) fn billing_page(&self, query: &[(String, String)]) -> Answer {
        let state = self.lock();
        let objects = &state.objects;
        let subscriptions: Vec<SubscriptionView> = objects
            .all("subscription")
            .into_iter()
            .map(|s| {
                let invoice = s.object["latest_invoice"]
                    .as_str()
                    .and_then(|i| objects.get("invoice", i));
                subscription_view(s, invoice.map(|i| &i.object))
            })
            .collect();
        let charges: Vec<ChargeView> = objects
            .all("charge")
            .into_iter()
            .map(|c| {
                let id = c.object["id"].as_str().unwrap_or_default();
                charge_view(c, objects.find("dispute", "charge", id).map(|d| &d.object))
            })
            .collect();
        drop(state);
        let done = query
            .iter()
            .find(|(k, _)| k == "done")
            .map(|(_, v)| v.clone());
        self.render(
            StatusCode::OK,
            "billing.html",
            json!({"subscriptions": subscriptions, "charges": charges, "done": done}),
        )
    }

    /// `POST /dev/billing`: `act=<action>:<id>` (the button pressed), `amount:<charge>` for a
    /// partial refund, and the delivery switches of the pay page.
    pub(crate) fn billing_action(self: &Arc<Self>, form: &[(String, String)]) -> Answer {
        let field = |name: &str| {
            form.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let delivery = Delivery {
            duplicate: field("duplicate").is_some(),
            out_of_order: field("out_of_order").is_some(),
            withhold: field("withhold").is_some(),
        };
        let act = field("act").unwrap_or_default();
        let (verb, id) = act.split_once(':').unwrap_or((act.as_str(), ""));
        let control = match verb {
            "renew" => Control::Renew,
            "fail_renewal" => Control::FailRenewal,
            "require_action" => Control::RequireAction,
            "cancel" => Control::Cancel,
            "cancel_at_period_end" => Control::CancelAtPeriodEnd,
            "refund" => match field(&format!("amount:{id}")).map(|a| a.parse::<i64>()) {
                None => Control::Refund(None),
                Some(Ok(amount)) => Control::Refund(Some(amount)),
                Some(Err(_)) => {
                    return self.message(
                        StatusCode::BAD_REQUEST,
                        "Invalid amount",
                        "A refund amount is a whole number of the currency's smallest unit (cents).",
                    );
                }
            },
            "dispute" => Control::Dispute,
            "won" => Control::CloseDispute { won: true },
            "lost" => Control::CloseDispute { won: false },
            _ => {
                return self.message(StatusCode::BAD_REQUEST, "Unknown action", &act);
            }
        };
        self.answer_action(control, id, delivery, "/dev/billing")
    }

    /// `GET /i/{id}`: the hosted invoice page, with Pay while the invoice is open.
    pub(crate) fn invoice_page(&self, id: &str) -> Answer {
        let Some(invoice) = self
            .lock()
            .objects
            .get("invoice", id)
            .map(|i| i.object.clone())
        else {
            return self.message(StatusCode::NOT_FOUND, "Not found", "No such invoice.");
        };
        let lines: Vec<Value> = invoice["lines"]["data"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|l| json!({"description": l["description"], "amount": money(&l["amount"], &l["currency"])}))
            .collect();
        self.render(
            StatusCode::OK,
            "invoice.html",
            json!({
                "id": id,
                "number": invoice["number"],
                "status": invoice["status"],
                "email": invoice["customer_email"],
                "due": money(&invoice["amount_remaining"], &invoice["currency"]),
                "total": money(&invoice["total"], &invoice["currency"]),
                "lines": lines,
            }),
        )
    }

    /// `POST /i/{id}`: the customer pays the open invoice.
    pub(crate) fn invoice_pay(self: &Arc<Self>, id: &str) -> Answer {
        self.answer_action(
            Control::PayInvoice,
            id,
            Delivery::default(),
            &format!("/i/{id}"),
        )
    }

    fn answer_action(
        self: &Arc<Self>,
        action: Control,
        id: &str,
        delivery: Delivery,
        back: &str,
    ) -> Answer {
        match self.perform(action, id, delivery) {
            Ok(_) if back.starts_with("/i/") => see_other(back),
            Ok(done) => see_other(&format!("{back}?done={done}")),
            Err(error @ DevError::NoSuch { .. }) => {
                self.message(StatusCode::NOT_FOUND, "Not found", &error.to_string())
            }
            Err(error) => self.message(StatusCode::BAD_REQUEST, "Refused", &error.to_string()),
        }
    }
}
