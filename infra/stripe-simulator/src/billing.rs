//! Customers and subscriptions: what paying a subscription-mode session makes (a customer if
//! the session had none, an `active` subscription, its first invoice paid), and what the
//! developer's controls do to a subscription afterwards — renew it, fail or hold its renewal
//! for authentication, cancel it now or at the period's end — with the events Stripe sends.
//!
//! The objects' shapes are in `subscriptions` and `invoices`.

use serde_json::{Value, json};

use crate::charges::Done;
use crate::delivery::Outgoing;
use crate::invoices::{self, Outcome};
use crate::objects::{DevError, Objects, no_such};
use crate::subscriptions::{
    NewSubscription, PERIOD_SECS, customer_json, item_json, items, period_end, subscription_json,
};
use crate::{Simulator, StoredSession, random_suffix};

impl Simulator {
    /// Pays a subscription-mode session: the customer (made if the session named none), the
    /// subscription of its recurring prices, the first invoice (one-time prices as invoice
    /// items on it) and its payment. The session gets `subscription` and `customer`; its
    /// `payment_intent` stays null, as on Stripe. Returns the events before
    /// `checkout.session.completed`.
    pub(crate) fn subscribe(
        &self,
        objects: &mut Objects,
        stored: &mut StoredSession,
        now: i64,
    ) -> Vec<Outgoing> {
        let account = stored.account.clone();
        let account = account.as_deref();
        let details = stored.session.customer_details.clone().unwrap_or_default();
        let customer = stored
            .session
            .customer
            .as_ref()
            .map_or_else(|| format!("cus_{}", random_suffix(14)), ToString::to_string);
        // A customer the session named was made on Stripe beforehand; here it is made now.
        if objects.get("customer", &customer).is_none() {
            let (email, name) = (json!(details.email), json!(details.name));
            objects.insert(account, customer_json(&customer, &email, &name, now));
        }
        if let Some(c) = objects.get_mut("customer", &customer) {
            c["currency"] = json!(stored.session.currency);
        }
        let id = format!("sub_{}", random_suffix(24));
        let mut recurring = Vec::new();
        let mut one_time = Vec::new();
        for item in &stored.items {
            let Some(price) = item
                .price
                .as_ref()
                .and_then(|p| self.catalog_price(p.id.as_str()))
            else {
                continue;
            };
            let quantity = i64::try_from(item.quantity.unwrap_or(1)).unwrap_or(1);
            if price.recurring.is_some() {
                recurring.push(item_json(&id, &price.json(), quantity, now));
            } else {
                one_time.push((price, quantity));
            }
        }
        let mut subscription = subscription_json(
            NewSubscription {
                id: &id,
                customer: &customer,
                currency: &json!(stored.session.currency),
                items: recurring,
                payment_method: &format!("pm_{}", random_suffix(24)),
                application_fee_percent: stored.application_fee_percent,
            },
            now,
        );
        let invoice_id = format!("in_{}", random_suffix(24));
        let mut lines = self.lines(&invoice_id, &subscription);
        lines.extend(
            one_time
                .into_iter()
                .map(|(p, q)| invoices::one_time_line(&invoice_id, &subscription, p, q, now)),
        );
        let customer_object = objects
            .get("customer", &customer)
            .map(|c| c.object.clone())
            .unwrap_or_default();
        let mut invoice = invoices::draft(
            &invoice_id,
            &subscription,
            &customer_object,
            "subscription_create",
            lines,
            (now, now),
            now,
        );
        subscription["latest_invoice"] = invoice_id.clone().into();
        objects.insert(account, subscription.clone());
        let mut events: Vec<Outgoing> = vec![
            ("customer.subscription.created", subscription).into(),
            ("invoice.created", invoice.clone()).into(),
        ];
        self.finalize(objects, &mut invoice, now);
        events.push(("invoice.finalized", invoice.clone()).into());
        objects.insert(account, invoice);
        events.extend(self.collect(objects, &invoice_id, Outcome::Paid, now));
        stored.session.customer = customer.parse().ok();
        stored.session.subscription = Some(id);
        stored.invoice = Some(invoice_id);
        events
    }

    /// The invoice lines of every item of the subscription, for their current period.
    fn lines(&self, invoice: &str, subscription: &Value) -> Vec<Value> {
        items(subscription)
            .iter()
            .map(|item| {
                let name = item["price"]["id"]
                    .as_str()
                    .and_then(|p| self.catalog_price(p))
                    .map(|c| c.name.clone())
                    .unwrap_or_default();
                invoices::subscription_line(invoice, subscription, item, &name)
            })
            .collect()
    }

    /// A new period: every item's period moves on 30 days and a `subscription_cycle` invoice
    /// for it is made and finalized (`invoice.created`, `invoice.finalized`).
    fn cycle(&self, objects: &mut Objects, id: &str, now: i64) -> (String, Vec<Outgoing>) {
        let owned = objects
            .get("subscription", id)
            .expect("checked by the caller");
        let account = owned.account.clone();
        let mut subscription = owned.object.clone();
        let ended = (
            subscription["items"]["data"][0]["current_period_start"]
                .as_i64()
                .unwrap_or(now),
            period_end(&subscription).as_i64().unwrap_or(now),
        );
        for item in subscription["items"]["data"]
            .as_array_mut()
            .into_iter()
            .flatten()
        {
            let start = item["current_period_end"].as_i64().unwrap_or(now);
            item["current_period_start"] = start.into();
            item["current_period_end"] = (start + PERIOD_SECS).into();
        }
        let invoice_id = format!("in_{}", random_suffix(24));
        let lines = self.lines(&invoice_id, &subscription);
        let customer = objects
            .get(
                "customer",
                subscription["customer"].as_str().unwrap_or_default(),
            )
            .map(|c| c.object.clone())
            .unwrap_or_default();
        let mut invoice = invoices::draft(
            &invoice_id,
            &subscription,
            &customer,
            "subscription_cycle",
            lines,
            ended,
            now,
        );
        subscription["latest_invoice"] = invoice_id.clone().into();
        objects.insert(account.as_deref(), subscription);
        let mut events: Vec<Outgoing> = vec![("invoice.created", invoice.clone()).into()];
        self.finalize(objects, &mut invoice, now);
        events.push(("invoice.finalized", invoice.clone()).into());
        objects.insert(account.as_deref(), invoice);
        (invoice_id, events)
    }

    /// The subscription, refused if it has ended.
    fn live(objects: &Objects, id: &str) -> Result<(Option<String>, Value), DevError> {
        let owned = objects
            .get("subscription", id)
            .ok_or_else(|| no_such("subscription", id))?;
        match owned.object["status"].as_str() {
            Some("canceled" | "incomplete_expired") => Err(DevError::Refused(format!(
                "Subscription {id} has ended; it cannot be changed."
            ))),
            _ => Ok((owned.account.clone(), owned.object.clone())),
        }
    }

    /// The latest invoice if it is still open (a failed or pending renewal).
    fn open_invoice(objects: &Objects, subscription: &Value) -> Option<String> {
        let id = subscription["latest_invoice"].as_str()?;
        let invoice = objects.get("invoice", id)?;
        (invoice.object["status"] == "open").then(|| id.to_string())
    }

    /// Renews: a paid `subscription_cycle` invoice for the next period. A subscription set to
    /// cancel at the period's end ends instead; one with an open invoice pays that invoice.
    /// The id is the invoice's, or the subscription's when it ended.
    pub(crate) fn renew_now(
        &self,
        objects: &mut Objects,
        id: &str,
        now: i64,
    ) -> Result<Done, DevError> {
        let (account, before) = Self::live(objects, id)?;
        if before["cancel_at_period_end"] == true {
            return self.cancel_now(objects, id, now);
        }
        if let Some(invoice) = Self::open_invoice(objects, &before) {
            return self.pay_invoice_now(objects, &invoice, now);
        }
        let (invoice, mut events) = self.cycle(objects, id, now);
        events.extend(self.collect(objects, &invoice, Outcome::Paid, now));
        events.extend(Self::set_status(objects, id, &before, "active"));
        Ok(Done {
            id: invoice,
            account,
            events,
        })
    }

    /// Pays an open invoice (the hosted invoice page's Pay, or a renewal after a failure);
    /// the subscription is `active` again.
    pub(crate) fn pay_invoice_now(
        &self,
        objects: &mut Objects,
        id: &str,
        now: i64,
    ) -> Result<Done, DevError> {
        let owned = objects
            .get("invoice", id)
            .ok_or_else(|| no_such("invoice", id))?;
        let account = owned.account.clone();
        if owned.object["status"] != "open" {
            return Err(DevError::Refused(format!("Invoice {id} is not open.")));
        }
        let subscription = owned.object["parent"]["subscription_details"]["subscription"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let mut events = self.collect(objects, id, Outcome::Paid, now);
        if let Ok((_, before)) = Self::live(objects, &subscription) {
            events.extend(Self::set_status(objects, &subscription, &before, "active"));
        }
        Ok(Done {
            id: id.to_string(),
            account,
            events,
        })
    }

    /// A renewal whose payment fails (`Failed`) or waits for the customer to authenticate
    /// (`ActionRequired`): the open invoice is attempted again, or a new period's invoice is
    /// made; the subscription is `past_due`.
    pub(crate) fn renewal_not_paid(
        &self,
        objects: &mut Objects,
        id: &str,
        outcome: Outcome,
        now: i64,
    ) -> Result<Done, DevError> {
        let (account, before) = Self::live(objects, id)?;
        let (invoice, mut events) = match Self::open_invoice(objects, &before) {
            Some(invoice) => (invoice, Vec::new()),
            None => self.cycle(objects, id, now),
        };
        events.extend(self.collect(objects, &invoice, outcome, now));
        events.extend(Self::set_status(objects, id, &before, "past_due"));
        Ok(Done {
            id: invoice,
            account,
            events,
        })
    }

    /// Sets the status; `customer.subscription.updated` if anything changed since `before`.
    fn set_status(
        objects: &mut Objects,
        id: &str,
        before: &Value,
        status: &str,
    ) -> Option<Outgoing> {
        let subscription = objects.get_mut("subscription", id)?;
        subscription["status"] = status.into();
        (subscription != before).then(|| {
            Outgoing::updated(
                "customer.subscription.updated",
                before,
                subscription.clone(),
            )
        })
    }

    /// Cancels now: `canceled`, ended; `customer.subscription.deleted`.
    pub(crate) fn cancel_now(
        &self,
        objects: &mut Objects,
        id: &str,
        now: i64,
    ) -> Result<Done, DevError> {
        let (account, _) = Self::live(objects, id)?;
        let subscription = objects.get_mut("subscription", id).expect("live");
        subscription["status"] = "canceled".into();
        if subscription["canceled_at"].is_null() {
            subscription["canceled_at"] = now.into();
        }
        subscription["ended_at"] = now.into();
        subscription["cancellation_details"]["reason"] = "cancellation_requested".into();
        let events = vec![("customer.subscription.deleted", subscription.clone()).into()];
        Ok(Done {
            id: id.to_string(),
            account,
            events,
        })
    }

    /// Cancels at the period's end: `cancel_at_period_end`, `cancel_at` the period's end,
    /// `canceled_at` now (as Stripe records the request); `customer.subscription.updated`.
    /// The next renewal ends it.
    pub(crate) fn cancel_at_end(
        &self,
        objects: &mut Objects,
        id: &str,
        now: i64,
    ) -> Result<Done, DevError> {
        let (account, before) = Self::live(objects, id)?;
        if before["cancel_at_period_end"] == true {
            return Err(DevError::Refused(format!(
                "Subscription {id} is already set to cancel at the end of its period."
            )));
        }
        let subscription = objects.get_mut("subscription", id).expect("live");
        subscription["cancel_at_period_end"] = true.into();
        subscription["cancel_at"] = period_end(&before);
        subscription["canceled_at"] = now.into();
        subscription["cancellation_details"]["reason"] = "cancellation_requested".into();
        let after = subscription.clone();
        Ok(Done {
            id: id.to_string(),
            account,
            events: vec![Outgoing::updated(
                "customer.subscription.updated",
                &before,
                after,
            )],
        })
    }
}
