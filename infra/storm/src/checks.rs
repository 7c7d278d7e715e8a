//! The invariants the storm asserts once the run has settled, each over what the stack left
//! in moto and in the fulfiller's log, never over what the stack says about itself.
//!
//! The one allowance is the documented one: `Fulfil` is at-least-once across a crash (a
//! process killed after `Fulfil` acted and before the order was recorded fulfilled is re-run
//! when its lease expires, fulfillment/order.rs). A second successful call is accepted only
//! when the first came from the process the storm killed, a second confirmation only for a
//! call in that process that did not fail (returned, or cut short by the kill); each is
//! counted and printed.

use std::collections::{BTreeMap, HashMap, HashSet};

use checkout_core::store::{EventRecord, FulfillmentState, OrderRecord};

use crate::observe::{Email, FulfilCall, unfinished};
use crate::workload::{Cart, Kind};

/// One invariant's verdict.
pub struct Check {
    pub name: &'static str,
    pub failures: Vec<String>,
}

impl Check {
    fn new(name: &'static str, failures: Vec<String>) -> Self {
        Self { name, failures }
    }
}

/// What the checks read.
pub struct Evidence<'a> {
    pub carts: &'a [Cart],
    pub orders: &'a HashMap<String, OrderRecord>,
    pub events: &'a [EventRecord],
    pub emails: &'a [Email],
    pub calls: &'a [FulfilCall],
    /// The pids of the stacks the storm killed.
    pub killed: &'a HashSet<u32>,
    pub lost_deliveries: u64,
}

/// Counted, not failed: what the crash allowance let through.
#[derive(Default)]
pub struct Allowed {
    pub refulfilled_after_crash: usize,
    pub confirmations_after_crash: usize,
    pub interrupted_calls: usize,
    pub failed_calls: usize,
}

const CONFIRMATION: &str = ": your order is confirmed";
const RECOVERY: &str = "You left something in your cart at ";
const PAYMENT_FAILED: &str = ": your payment did not go through";

/// Every check, and what the crash allowance counted.
pub fn run(e: &Evidence<'_>) -> (Vec<Check>, Allowed) {
    let mut allowed = Allowed::default();
    let checks = vec![
        Check::new("every cart played to its end", played(e)),
        Check::new("every paid cart fulfilled", paid_fulfilled(e)),
        Check::new("no order for an unpaid cart", unpaid_not_fulfilled(e)),
        Check::new(
            "Fulfil succeeded once per order",
            fulfilled_once(e, &mut allowed),
        ),
        Check::new(
            "one confirmation per order",
            one_confirmation(e, &mut allowed),
        ),
        Check::new(
            "recovery: opted in, once per address, not after a purchase",
            recovery(e),
        ),
        Check::new("a failed payment gets its notice only", failed_payments(e)),
        Check::new("every stored event has a final outcome", finished(e)),
        Check::new("no webhook delivery given up", lost(e)),
        Check::new("success page answers are documented", polls(e)),
    ];
    (checks, allowed)
}

fn played(e: &Evidence<'_>) -> Vec<String> {
    e.carts
        .iter()
        .filter_map(|c| {
            c.error
                .as_ref()
                .map(|err| format!("{} ({}): {err}", c.email, c.kind.name()))
        })
        .collect()
}

fn paid_fulfilled(e: &Evidence<'_>) -> Vec<String> {
    e.carts
        .iter()
        .filter(|c| c.kind.pays() && c.error.is_none())
        .filter_map(|c| {
            let session = c.session.as_deref()?;
            match e.orders.get(session).map(|o| &o.state) {
                Some(FulfillmentState::Fulfilled { .. }) => None,
                other => Some(format!("{session} ({}): {other:?}", c.kind.name())),
            }
        })
        .collect()
}

fn unpaid_not_fulfilled(e: &Evidence<'_>) -> Vec<String> {
    e.carts
        .iter()
        .flat_map(|c| {
            let unpaid = if c.kind.pays() {
                None
            } else {
                c.session.as_deref()
            };
            unpaid.into_iter().chain(c.abandoned.as_deref())
        })
        .filter_map(|session| match e.orders.get(session).map(|o| &o.state) {
            Some(state @ FulfillmentState::Fulfilled { .. }) => {
                Some(format!("{session}: {state:?}"))
            }
            _ => None,
        })
        .collect()
}

/// The fulfiller's calls by order: (pid, phase) in log order.
fn calls_by_order<'a>(e: &'a Evidence<'_>) -> BTreeMap<&'a str, Vec<&'a FulfilCall>> {
    let mut by_order: BTreeMap<&str, Vec<&FulfilCall>> = BTreeMap::new();
    for call in e.calls {
        by_order
            .entry(call.order_id.as_str())
            .or_default()
            .push(call);
    }
    by_order
}

fn fulfilled_once(e: &Evidence<'_>, allowed: &mut Allowed) -> Vec<String> {
    let mut failures = Vec::new();
    for (order, calls) in calls_by_order(e) {
        let starts = calls.iter().filter(|c| c.phase == "start").count();
        let oks: Vec<&&FulfilCall> = calls.iter().filter(|c| c.phase == "ok").collect();
        let errors = calls.iter().filter(|c| c.phase == "error").count();
        allowed.failed_calls += errors;
        allowed.interrupted_calls += starts.saturating_sub(oks.len() + errors);
        if !e.orders.contains_key(order) {
            failures.push(format!("{order}: Fulfil called, no order recorded"));
        }
        match oks.as_slice() {
            [] => failures.push(format!("{order}: Fulfil never succeeded")),
            [_] => {}
            [earlier @ .., _last] if earlier.iter().all(|c| e.killed.contains(&c.pid)) => {
                allowed.refulfilled_after_crash += earlier.len();
            }
            many => failures.push(format!(
                "{order}: Fulfil succeeded {} times (pids {:?})",
                many.len(),
                many.iter().map(|c| c.pid).collect::<Vec<_>>()
            )),
        }
    }
    let called: HashSet<&str> = e.calls.iter().map(|c| c.order_id.as_str()).collect();
    for (id, order) in e.orders {
        if matches!(order.state, FulfillmentState::Fulfilled { .. })
            && !called.contains(id.as_str())
        {
            failures.push(format!("{id}: fulfilled without a Fulfil call"));
        }
    }
    failures
}

fn one_confirmation(e: &Evidence<'_>, allowed: &mut Allowed) -> Vec<String> {
    let mut by_order: HashMap<&str, usize> = HashMap::new();
    for email in e
        .emails
        .iter()
        .filter(|m| m.subject.ends_with(CONFIRMATION))
    {
        match reference(&email.text) {
            Some(order) => *by_order.entry(order).or_default() += 1,
            None => {
                return vec![format!(
                    "a confirmation without its order reference: {}",
                    email.subject
                )];
            }
        }
    }
    let by_calls = calls_by_order(e);
    let mut failures = Vec::new();
    for (id, order) in e.orders {
        if !matches!(order.state, FulfillmentState::Fulfilled { .. }) {
            if by_order.contains_key(id.as_str()) {
                failures.push(format!("{id}: confirmed but {}", order.state.name()));
            }
            continue;
        }
        let sent = by_order.get(id.as_str()).copied().unwrap_or(0);
        // A second email is allowed only for a call in a killed process that may have sent
        // one (the documented crash window), never for calls that ended.
        let crash_reruns = by_calls
            .get(id.as_str())
            .map_or(0, |calls| may_have_sent_before_the_kill(calls, e.killed));
        match sent {
            1 => {}
            n if n > 1 && n - 1 <= crash_reruns => allowed.confirmations_after_crash += n - 1,
            n => failures.push(format!("{id}: {n} confirmations")),
        }
    }
    failures
}

/// How many of an order's `Fulfil` calls in killed processes may have sent its confirmation:
/// those that returned `Ok` and those the kill cut short (a start with no end: the email is
/// sent inside `Fulfil`, so the kill can land after it and before the call returns). Calls
/// that returned an error sent nothing (`ConfirmationEmail` fails only before or at the send).
fn may_have_sent_before_the_kill(calls: &[&FulfilCall], killed: &HashSet<u32>) -> usize {
    let in_killed = |phase: &str| {
        calls
            .iter()
            .filter(|c| c.phase == phase && killed.contains(&c.pid))
            .count()
    };
    in_killed("start").saturating_sub(in_killed("error"))
}

/// `Order reference: <id>` in a confirmation's text.
fn reference(text: &str) -> Option<&str> {
    let rest = text.split("Order reference: ").nth(1)?;
    rest.split_whitespace().next()
}

/// The session id in a recovery email's link (`…/r/cs_…`).
fn recovered_session(text: &str) -> Option<&str> {
    let rest = text.split("/r/").nth(1)?;
    rest.split(|c: char| c.is_whitespace() || c == '"' || c == '?')
        .next()
}

fn recovery(e: &Evidence<'_>) -> Vec<String> {
    let eligible: HashSet<&str> = e
        .carts
        .iter()
        .filter(|c| c.kind == Kind::AbandonedConsent)
        .filter_map(|c| c.session.as_deref())
        .collect();
    let mut failures = Vec::new();
    let mut per_address: HashMap<&str, usize> = HashMap::new();
    let mut per_session: HashMap<&str, usize> = HashMap::new();
    for email in e.emails.iter().filter(|m| m.subject.starts_with(RECOVERY)) {
        *per_address.entry(email.to.as_str()).or_default() += 1;
        match recovered_session(&email.text) {
            Some(session) => {
                *per_session.entry(session).or_default() += 1;
                if !eligible.contains(session) {
                    let kind = e
                        .carts
                        .iter()
                        .find(|c| {
                            c.session.as_deref() == Some(session)
                                || c.abandoned.as_deref() == Some(session)
                        })
                        .map_or("not a storm cart", |c| c.kind.name());
                    failures.push(format!("{session}: a recovery email for a cart {kind}"));
                }
            }
            None => failures.push(format!("a recovery email without its link to {}", email.to)),
        }
    }
    failures.extend(
        per_address
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(to, n)| format!("{to}: {n} recovery emails in one window")),
    );
    failures.extend(
        per_session
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(s, n)| format!("{s}: {n} recovery emails")),
    );
    failures
}

fn failed_payments(e: &Evidence<'_>) -> Vec<String> {
    let mut failures = Vec::new();
    for cart in e.carts.iter().filter(|c| c.kind == Kind::DelayedFailed) {
        let theirs: Vec<&Email> = e
            .emails
            .iter()
            .filter(|m| m.to.contains(&cart.email))
            .collect();
        let notices = theirs
            .iter()
            .filter(|m| m.subject.ends_with(PAYMENT_FAILED))
            .count();
        let others: Vec<&str> = theirs
            .iter()
            .filter(|m| !m.subject.ends_with(PAYMENT_FAILED))
            .map(|m| m.subject.as_str())
            .collect();
        if notices > 1 {
            failures.push(format!("{}: {notices} failed-payment notices", cart.email));
        }
        if !others.is_empty() {
            failures.push(format!("{}: a failed order emailed {others:?}", cart.email));
        }
    }
    failures
}

fn finished(e: &Evidence<'_>) -> Vec<String> {
    unfinished(e.events)
        .iter()
        .map(|ev| {
            format!(
                "{} {} pending (fulfillment {:?}, recovery {:?}, subscriptions {:?})",
                ev.event_id.as_str(),
                ev.kind.as_str(),
                ev.outcome_fulfillment,
                ev.outcome_recovery,
                ev.outcome_subscriptions
            )
        })
        .collect()
}

fn lost(e: &Evidence<'_>) -> Vec<String> {
    if e.lost_deliveries == 0 {
        Vec::new()
    } else {
        vec![format!(
            "{} webhook copies never answered 2xx",
            e.lost_deliveries
        )]
    }
}

fn polls(e: &Evidence<'_>) -> Vec<String> {
    // 0: the stack was down (killed); 502/503: Stripe or DynamoDB failing (docs/api.md).
    e.carts
        .iter()
        .flat_map(|c| c.polls.iter().map(move |s| (c, *s)))
        .filter(|(_, s)| ![0, 200, 502, 503].contains(s))
        .map(|(c, s)| {
            format!(
                "{}: the success page answered {s}",
                c.session.as_deref().unwrap_or("?")
            )
        })
        .collect()
}

/// What a recovery check needs to know is a recovery email (the report counts them).
pub fn is_recovery(email: &Email) -> bool {
    email.subject.starts_with(RECOVERY)
}

pub fn is_confirmation(email: &Email) -> bool {
    email.subject.ends_with(CONFIRMATION)
}

pub fn is_payment_failed(email: &Email) -> bool {
    email.subject.ends_with(PAYMENT_FAILED)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(pid: u32, phase: &str) -> FulfilCall {
        FulfilCall {
            order_id: "cs_1".into(),
            pid,
            phase: phase.into(),
            at_ms: 0,
        }
    }

    fn allowance(calls: &[FulfilCall]) -> usize {
        let killed = HashSet::from([1]);
        may_have_sent_before_the_kill(&calls.iter().collect::<Vec<_>>(), &killed)
    }

    #[test]
    fn only_calls_in_the_killed_process_that_did_not_fail_may_have_sent() {
        // Found by the storm: killed after the email, before the call returned.
        assert_eq!(
            allowance(&[call(1, "start"), call(2, "start"), call(2, "ok")]),
            1
        );
        assert_eq!(
            allowance(&[
                call(1, "start"),
                call(1, "ok"),
                call(2, "start"),
                call(2, "ok")
            ]),
            1
        );
        assert_eq!(
            allowance(&[
                call(1, "start"),
                call(1, "error"),
                call(2, "start"),
                call(2, "ok")
            ]),
            0
        );
        // Nothing in the killed process: no allowance, however many calls.
        assert_eq!(
            allowance(&[
                call(2, "start"),
                call(2, "ok"),
                call(3, "start"),
                call(3, "ok")
            ]),
            0
        );
    }
}
