//! Paying a PaymentIntent made with `POST /v1/payment_intents`: what the Payment Element's
//! confirm does on Stripe, with the events Stripe sends. Each attempt makes a charge (kept
//! with the others, so `/dev/billing` can refund it): it succeeds at once, is declined at
//! once, or is `processing` (a delayed method) and settles [`SETTLE_AFTER`] later, either
//! way. A failed attempt leaves the PaymentIntent `requires_payment_method` with its
//! `last_payment_error`, so the customer can try again (a new attempt, a new charge); one that
//! succeeded or is processing cannot be confirmed again.
//!
//! A new card is saved to the PaymentIntent's customer when the payment succeeds, if
//! `setup_future_usage` asked for it (or the customer ticked "save", which sets it).
//! Kept simple: no `charge.pending` or `payment_method.attached` events are sent.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::charges::{Payer, charge_json};
use crate::customers::new_card;
use crate::delivery::{Delivery, Outgoing};
use crate::objects::{DevError, Objects, no_such};
use crate::{Simulator, State, unix_now};

/// How long a delayed payment stays `processing` before it settles by itself.
pub const SETTLE_AFTER: Duration = Duration::from_millis(1500);

/// What happens when the customer pays (the element page's four buttons).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirm {
    /// `succeeded` at once.
    Succeed,
    /// `processing`, then `succeeded` after [`SETTLE_AFTER`] (or at [`Simulator::settle_now`]).
    DelayedSuccess,
    /// `processing`, then failed after [`SETTLE_AFTER`] (or at [`Simulator::settle_now`]).
    DelayedFailure,
    /// Declined at once: failed without `processing`.
    Decline,
}

/// Which card pays: a saved one of the customer's, or one typed in (`save`: the customer
/// ticked "save this card").
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Paying {
    Saved(String),
    New { save: bool },
}

/// A processing attempt, waiting to settle: its charge, and whether it will succeed.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    charge: String,
    succeeds: bool,
}

/// What an attempt did: its charge, and the `redirect_status` the customer returns with.
pub(crate) struct Attempt {
    pub charge: String,
    pub redirect_status: &'static str,
}

const DECLINED: &str = "Your card was declined.";

/// Stripe's `last_payment_error` of a failed attempt: an immediate decline is the card's
/// (`card_declined`); a delayed method's failure is the attempt's.
fn payment_error(delayed: bool, charge: &str, payment_method: &Value) -> Value {
    let (code, decline_code, message) = if delayed {
        (
            "payment_intent_payment_attempt_failed",
            Value::Null,
            "The latest payment attempt of this PaymentIntent has failed or been canceled, and the attached payment method has been removed. You can try confirming again with a new payment method.",
        )
    } else {
        ("card_declined", json!("generic_decline"), DECLINED)
    };
    json!({
        "charge": charge,
        "code": code,
        "decline_code": decline_code,
        "doc_url": format!("https://stripe.com/docs/error-codes/{}", code.replace('_', "-")),
        "message": message,
        "param": null,
        "payment_method": payment_method,
        "payment_method_type": "card",
        "type": "card_error",
    })
}

fn object(objects: &Objects, kind: &'static str, id: &str) -> Result<Value, DevError> {
    objects
        .get(kind, id)
        .map(|o| o.object.clone())
        .ok_or_else(|| no_such(kind, id))
}

/// The attempt's charge succeeds: the PaymentIntent is `succeeded`, a new card is saved if
/// asked; `payment_intent.succeeded`, `charge.succeeded`.
fn succeed(objects: &mut Objects, id: &str, charge: &str) -> Result<Vec<Outgoing>, DevError> {
    let account = objects
        .get("payment_intent", id)
        .and_then(|o| o.account.clone());
    let mut intent = object(objects, "payment_intent", id)?;
    let mut paid = object(objects, "charge", charge)?;
    paid["status"] = "succeeded".into();
    paid["paid"] = true.into();
    intent["status"] = "succeeded".into();
    intent["amount_received"] = intent["amount"].clone();
    intent["last_payment_error"] = Value::Null;
    let card = paid["payment_method"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let saving = !intent["setup_future_usage"].is_null() && intent["customer"].is_string();
    if let Some(pm) = objects.get_mut("payment_method", &card).filter(|_| saving)
        && pm["customer"].is_null()
    {
        pm["customer"] = intent["customer"].clone();
        if pm["allow_redisplay"] == "unspecified" {
            pm["allow_redisplay"] = "limited".into();
        }
    }
    objects.insert(account.as_deref(), intent.clone());
    objects.insert(account.as_deref(), paid.clone());
    Ok(vec![
        ("payment_intent.succeeded", intent).into(),
        ("charge.succeeded", paid).into(),
    ])
}

/// The attempt's charge fails: the PaymentIntent is `requires_payment_method` again, with the
/// error and without the card; `payment_intent.payment_failed`, `charge.failed`.
fn fail(
    objects: &mut Objects,
    id: &str,
    charge: &str,
    delayed: bool,
) -> Result<Vec<Outgoing>, DevError> {
    let account = objects
        .get("payment_intent", id)
        .and_then(|o| o.account.clone());
    let mut intent = object(objects, "payment_intent", id)?;
    let mut failed = object(objects, "charge", charge)?;
    let card = object(
        objects,
        "payment_method",
        failed["payment_method"].as_str().unwrap_or_default(),
    )
    .unwrap_or(Value::Null);
    failed["status"] = "failed".into();
    failed["paid"] = false.into();
    failed["captured"] = false.into();
    failed["amount_captured"] = 0.into();
    failed["balance_transaction"] = Value::Null;
    failed["failure_code"] = "card_declined".into();
    failed["failure_message"] = DECLINED.into();
    failed["outcome"] = json!({
        "advice_code": null,
        "network_advice_code": null,
        "network_decline_code": null,
        "network_status": "declined_by_network",
        "reason": "generic_decline",
        "risk_level": "normal",
        "risk_score": 20,
        "seller_message": "The bank did not return any further details with this decline.",
        "type": "issuer_declined",
    });
    intent["status"] = "requires_payment_method".into();
    intent["payment_method"] = Value::Null;
    intent["amount_received"] = 0.into();
    intent["last_payment_error"] = payment_error(delayed, charge, &card);
    objects.insert(account.as_deref(), intent.clone());
    objects.insert(account.as_deref(), failed.clone());
    Ok(vec![
        ("payment_intent.payment_failed", intent).into(),
        ("charge.failed", failed).into(),
    ])
}

impl Simulator {
    /// Pays the PaymentIntent with a new card: `Succeed` sends `payment_intent.succeeded`,
    /// `charge.succeeded`; `Decline` sends `payment_intent.payment_failed`, `charge.failed`;
    /// the delayed ones send `payment_intent.processing` now and the success or failure
    /// events when they settle, [`SETTLE_AFTER`] later or at [`Self::settle_now`], whichever
    /// comes first. Returns the attempt's charge (`ch_…`). Needs a Tokio runtime, as every
    /// action that sends events does.
    ///
    /// # Errors
    /// No such PaymentIntent (one made with `POST /v1/payment_intents`), or it has
    /// succeeded or is processing.
    pub fn confirm_payment_intent(
        self: &Arc<Self>,
        id: &str,
        outcome: Confirm,
    ) -> Result<String, DevError> {
        self.attempt(id, outcome, &Paying::New { save: false })
            .map(|a| a.charge)
    }

    /// Settles a processing PaymentIntent now, as it would after [`SETTLE_AFTER`]: for
    /// tests that should not wait. Returns the charge's id.
    ///
    /// # Errors
    /// No attempt of that PaymentIntent is processing.
    pub fn settle_now(self: &Arc<Self>, payment_intent: &str) -> Result<String, DevError> {
        self.settle_attempt(payment_intent, None)
    }

    /// One attempt: the card, its charge, the PaymentIntent's new state; its events sent.
    pub(crate) fn attempt(
        self: &Arc<Self>,
        id: &str,
        outcome: Confirm,
        paying: &Paying,
    ) -> Result<Attempt, DevError> {
        let now = unix_now();
        let (account, charge, events) = {
            let mut state = self.lock();
            let State {
                objects,
                element_intents,
                pending_attempts,
                ..
            } = &mut *state;
            if !element_intents.contains(id) {
                return Err(no_such("payment_intent", id));
            }
            let account = objects
                .get("payment_intent", id)
                .and_then(|o| o.account.clone());
            let mut intent = object(objects, "payment_intent", id)?;
            match intent["status"].as_str() {
                Some("succeeded") => {
                    return Err(DevError::Refused(
                        "You cannot confirm this PaymentIntent because it has already succeeded after being previously confirmed.".into(),
                    ));
                }
                Some("requires_payment_method") => {}
                Some(status) => {
                    return Err(DevError::Refused(format!(
                        "You cannot confirm this PaymentIntent because it has a status of {status}."
                    )));
                }
                None => return Err(no_such("payment_intent", id)),
            }
            let customer = objects
                .get("customer", intent["customer"].as_str().unwrap_or_default())
                .map(|c| c.object.clone());
            let (email, name) = customer.as_ref().map_or_else(
                || (intent["receipt_email"].clone(), Value::Null),
                |c| (c["email"].clone(), c["name"].clone()),
            );
            let card = match paying {
                Paying::Saved(pm) => objects
                    .get("payment_method", pm)
                    .filter(|o| o.account == account && o.object["customer"] == intent["customer"])
                    .filter(|_| intent["customer"].is_string())
                    .map(|o| o.object.clone())
                    .ok_or_else(|| no_such("payment_method", pm))?,
                Paying::New { save } => {
                    let mut card = new_card(&email, &name, now);
                    if *save && intent["customer"].is_string() {
                        card["allow_redisplay"] = "always".into();
                        if intent["setup_future_usage"].is_null() {
                            intent["setup_future_usage"] = "off_session".into();
                        }
                    }
                    objects.insert(account.as_deref(), card.clone());
                    card
                }
            };
            let pm = card["id"].as_str().unwrap_or_default().to_string();
            let payer = Payer {
                customer: &intent["customer"],
                email: &email,
                name: &name,
                payment_method: &pm,
            };
            let mut charge = charge_json(&self.config.public_url, &payer, &intent, now);
            let details = &mut charge["payment_method_details"]["card"];
            details["exp_month"] = card["card"]["exp_month"].clone();
            details["exp_year"] = card["card"]["exp_year"].clone();
            details["fingerprint"] = card["card"]["fingerprint"].clone();
            charge["metadata"] = intent["metadata"].clone();
            charge["receipt_email"] = intent["receipt_email"].clone();
            let charge_id = charge["id"].as_str().unwrap_or_default().to_string();
            intent["payment_method"] = pm.into();
            intent["latest_charge"] = charge_id.clone().into();
            let delayed = matches!(outcome, Confirm::DelayedSuccess | Confirm::DelayedFailure);
            if delayed {
                charge["status"] = "pending".into();
                charge["paid"] = false.into();
                intent["status"] = "processing".into();
            }
            objects.insert(account.as_deref(), intent.clone());
            objects.insert(account.as_deref(), charge);
            let events = match outcome {
                Confirm::Succeed => succeed(objects, id, &charge_id)?,
                Confirm::Decline => fail(objects, id, &charge_id, false)?,
                Confirm::DelayedSuccess | Confirm::DelayedFailure => {
                    pending_attempts.insert(
                        id.to_string(),
                        Pending {
                            charge: charge_id.clone(),
                            succeeds: outcome == Confirm::DelayedSuccess,
                        },
                    );
                    vec![("payment_intent.processing", intent).into()]
                }
            };
            (account, charge_id, events)
        };
        self.send_events(account.as_deref(), events, Delivery::default());
        let redirect_status = match outcome {
            Confirm::Succeed => "succeeded",
            Confirm::Decline => "failed",
            Confirm::DelayedSuccess | Confirm::DelayedFailure => {
                let simulator = self.clone();
                let (id, charge) = (id.to_string(), charge.clone());
                tokio::spawn(async move {
                    tokio::time::sleep(SETTLE_AFTER).await;
                    // Settled already (`settle_now`) is fine: nothing is pending any more.
                    let _ = simulator.settle_attempt(&id, Some(&charge));
                });
                "processing"
            }
        };
        Ok(Attempt {
            charge,
            redirect_status,
        })
    }

    /// Ends the processing attempt of the PaymentIntent (only the one of `charge`, when
    /// given, so a late timer cannot settle a later attempt).
    fn settle_attempt(
        self: &Arc<Self>,
        id: &str,
        charge: Option<&str>,
    ) -> Result<String, DevError> {
        let (account, charge, events) = {
            let mut state = self.lock();
            let State {
                objects,
                pending_attempts,
                ..
            } = &mut *state;
            let pending = pending_attempts
                .get(id)
                .filter(|p| charge.is_none_or(|c| c == p.charge))
                .cloned()
                .ok_or_else(|| {
                    DevError::Refused(format!("PaymentIntent {id} has no payment processing."))
                })?;
            pending_attempts.remove(id);
            let account = objects
                .get("payment_intent", id)
                .and_then(|o| o.account.clone());
            let events = if pending.succeeds {
                succeed(objects, id, &pending.charge)?
            } else {
                fail(objects, id, &pending.charge, true)?
            };
            (account, pending.charge, events)
        };
        self.send_events(account.as_deref(), events, Delivery::default());
        Ok(charge)
    }
}
