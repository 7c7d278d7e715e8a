//! `ops explain cs_…|pi_…|sub_…|evt_…`: what happened to one cart, payment or subscription,
//! as a timeline read from the bundle's own tables (the session as created, each event with
//! what each consumer did with it, the order and what came after it, the subscription and
//! its access, the recovery email). No customer data is printed but the order's
//! amounts.

use aws_sdk_dynamodb::types::AttributeValue;

use crate::clock::iso8601;
use crate::config::{ConfigError, Source, TableName};
use crate::ids::{EventId, SessionId, SubscriptionId};
use crate::mail::EmailStatus;
use crate::money::Money;
use crate::store::{
    AccessState, Consumer, DynamoDb, EventOutcome, EventRecord, EventStore, FulfillmentState,
    OrderStore, RecoveryStore, SessionStore, StoreError, SubscriptionRecord, SubscriptionStore,
};

#[derive(Debug, Clone)]
pub struct ExplainConfig {
    pub events_table: TableName,
    pub sessions_table: TableName,
    pub orders_table: TableName,
    pub recovery_table: TableName,
    pub subscriptions_table: TableName,
}

impl ExplainConfig {
    /// # Errors
    /// A missing or invalid table name, named.
    pub fn from_env(env: &impl Source) -> Result<Self, ConfigError> {
        Ok(Self {
            events_table: TableName::from_env(env, "EVENTS_TABLE")?,
            sessions_table: TableName::from_env(env, "SESSIONS_TABLE")?,
            orders_table: TableName::from_env(env, "ORDERS_TABLE")?,
            recovery_table: TableName::from_env(env, "RECOVERY_TABLE")?,
            subscriptions_table: TableName::from_env(env, "SUBSCRIPTIONS_TABLE")?,
        })
    }
}

pub struct Explainer {
    events: EventStore,
    sessions: SessionStore,
    orders: OrderStore,
    recovery: RecoveryStore,
    subscriptions: SubscriptionStore,
}

impl Explainer {
    #[must_use]
    pub fn new(config: ExplainConfig, dynamodb: DynamoDb) -> Self {
        Self {
            events: EventStore::new(config.events_table, dynamodb.clone()),
            sessions: SessionStore::new(config.sessions_table, dynamodb.clone()),
            orders: OrderStore::new(config.orders_table, dynamodb.clone()),
            recovery: RecoveryStore::new(config.recovery_table, dynamodb.clone()),
            subscriptions: SubscriptionStore::new(config.subscriptions_table, dynamodb),
        }
    }

    /// The timeline of `id` (a session, a PaymentIntent, or an event and then its object),
    /// one line a step.
    ///
    /// # Errors
    /// DynamoDB failed.
    pub async fn explain(&self, id: &str) -> Result<Vec<String>, StoreError> {
        let mut lines = Vec::new();
        let object_id = if let Ok(event_id) = id.parse::<EventId>() {
            let Some(event) = self.events.get(&event_id).await? else {
                return Ok(vec![format!("{id}: no such event stored")]);
            };
            lines.push(format!(
                "{id} {} about {}",
                event.kind,
                event.object_id.as_deref().unwrap_or("no object")
            ));
            match event.object_id {
                Some(object_id) => object_id,
                None => return Ok(lines),
            }
        } else {
            id.to_string()
        };
        lines.push(object_id.to_string());
        if let Ok(session_id) = object_id.parse::<SessionId>()
            && let Some(session) = self.sessions.get(&session_id).await?
        {
            lines.push(format!(
                "  {}  created here: {:?} mode, {} item(s){}",
                iso8601(session.created_at),
                session.mode,
                session.items.len(),
                session
                    .account
                    .as_ref()
                    .map(|a| format!(", on {a}"))
                    .unwrap_or_default()
            ));
        }
        let events = self.events.for_object(&object_id).await?;
        if events.is_empty() {
            lines.push("  no event stored for it".into());
        }
        for event in &events {
            lines.push(event_line(event));
        }
        if let Ok(id) = object_id.parse::<SubscriptionId>() {
            match self.subscriptions.get(&id).await? {
                None => lines.push("  subscription: not recorded".into()),
                Some(record) => lines.push(subscription_line(&record)),
            }
            return Ok(lines);
        }
        match self.orders.get(&object_id).await? {
            None => lines.push("  order: none".into()),
            Some(order) => {
                let money = order.details.as_ref().map(|d| {
                    Money {
                        amount: d.amount_total,
                        currency: d.currency.as_ref(),
                    }
                    .to_string()
                });
                let reason = match &order.state {
                    FulfillmentState::Failed { reason } => format!(" ({reason})"),
                    _ => String::new(),
                };
                let refunded = if order.after.amount_refunded > 0 {
                    let currency = order.details.as_ref().and_then(|d| d.currency.as_ref());
                    let amount = Money {
                        amount: order.after.amount_refunded,
                        currency,
                    };
                    format!(", refunded {amount}")
                } else {
                    String::new()
                };
                lines.push(format!(
                    "  {}  order {}{reason}, attempts {}{}{refunded}{}",
                    iso8601(order.updated_at),
                    order.status(),
                    order.attempts,
                    money.map(|m| format!(", total {m}")).unwrap_or_default(),
                    access_text(order.access, None)
                ));
                if let Some(email) = &order.email {
                    lines.push(format!("  confirmation email: {}", email_line(email)));
                }
            }
        }
        if let Ok(session_id) = object_id.parse::<SessionId>()
            && let Some(item) = self.recovery.session_item(&session_id).await?
        {
            lines.push(recovery_line(&item));
        }
        Ok(lines)
    }
}

fn event_line(event: &EventRecord) -> String {
    let outcomes: Vec<String> = Consumer::ALL
        .iter()
        .filter(|c| c.events().contains(&event.kind))
        .map(|c| {
            let what = match event.outcome(*c) {
                None => "pending".to_string(),
                Some(EventOutcome::Done { .. }) => "done".to_string(),
                Some(EventOutcome::Skipped { reason, .. }) => format!("skipped ({reason})"),
                Some(EventOutcome::Failed { reason, .. }) => {
                    format!("failed ({reason}, {} attempt(s))", event.attempts(*c))
                }
            };
            format!("{c} {what}")
        })
        .collect();
    format!(
        "  {}  {} {} received: {}",
        iso8601(event.received_at),
        event.event_id,
        event.kind,
        if outcomes.is_empty() {
            "no consumer".to_string()
        } else {
            outcomes.join(", ")
        }
    )
}

fn access_text(access: Option<AccessState>, until: Option<i64>) -> String {
    match (access, until) {
        (Some(AccessState::Granted), Some(until)) => {
            format!(", access granted until {}", iso8601(until))
        }
        (Some(AccessState::Granted), None) => ", access granted".into(),
        (Some(AccessState::Revoked), _) => ", access revoked".into(),
        (None, _) => String::new(),
    }
}

fn subscription_line(record: &SubscriptionRecord) -> String {
    let status = record
        .state
        .as_ref()
        .map_or("unknown (Stripe will be asked)", |s| s.status.as_str());
    let period = record
        .state
        .as_ref()
        .and_then(|s| s.current_period_end)
        .map(|end| format!(", period ends {}", iso8601(end)))
        .unwrap_or_default();
    let invoice = match (&record.latest_invoice, record.latest_invoice_status) {
        (Some(invoice), Some(status)) => format!(", latest invoice {invoice} {status:?}"),
        _ => String::new(),
    };
    format!(
        "  {}  subscription {status}{period}, {} renewal(s){invoice}{}{}",
        iso8601(record.updated_at),
        record.renewals,
        record
            .session
            .as_ref()
            .map(|s| format!(", from {s}"))
            .unwrap_or_default(),
        access_text(record.access, record.access_until)
    )
}

fn email_line(email: &EmailStatus) -> String {
    match email {
        EmailStatus::Sent { .. } => "sent".into(),
        EmailStatus::NotSent { reason } => format!("not sent ({reason})"),
        EmailStatus::Failed { reason } => format!("failed ({reason})"),
        EmailStatus::Unknown { .. } => "outcome unknown (counted as sent)".into(),
    }
}

fn recovery_line(item: &std::collections::HashMap<String, AttributeValue>) -> String {
    let text = |key: &str| item.get(key).and_then(|v| v.as_s().ok()).cloned();
    let number = |key: &str| {
        item.get(key)
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse::<i64>().ok())
    };
    let mut line = format!(
        "  recovery email: {}",
        text("state").unwrap_or_else(|| "unknown".into())
    );
    if let Some(at) = number("sent_at") {
        line.push_str(&format!(" at {}", iso8601(at)));
    }
    if let Some(at) = number("converted_at") {
        line.push_str(&format!(", recovered: bought again at {}", iso8601(at)));
    }
    line
}
