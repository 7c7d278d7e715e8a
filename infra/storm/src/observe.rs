//! What the storm reads after (and while) the stack runs, straight from moto, never through
//! the fault proxy: the orders, the stored events, the outbox, and the file the stack's
//! counting fulfiller writes (`FULFIL_LOG_FILE`, infra/local/src/fulfil_log.rs).

use std::collections::HashMap;
use std::path::Path;

use aws_sdk_dynamodb::types::AttributeValue;
use checkout_core::config::TableName;
use checkout_core::store::{DynamoDb, EventRecord};
use serde::de::DeserializeOwned;

use crate::client::Http;

/// Every item of `table`, across pages.
///
/// # Errors
/// moto failed, or an item is not a `T`.
pub async fn scan<T: DeserializeOwned>(
    client: &DynamoDb,
    table: &TableName,
) -> Result<Vec<T>, String> {
    let mut items = Vec::new();
    let mut start: Option<HashMap<String, AttributeValue>> = None;
    loop {
        let page = client
            .scan()
            .table_name(table.as_str())
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| aws_sdk_dynamodb::error::DisplayErrorContext(&e).to_string())?;
        for item in page.items.unwrap_or_default() {
            items.push(serde_dynamo::from_item(item).map_err(|e| e.to_string())?);
        }
        start = page.last_evaluated_key.filter(|k| !k.is_empty());
        if start.is_none() {
            return Ok(items);
        }
    }
}

/// An email moto's SES took.
#[derive(Debug, Clone)]
pub struct Email {
    pub to: String,
    pub subject: String,
    pub text: String,
}

/// The outbox of the moto at `endpoint`.
///
/// # Errors
/// moto did not answer or the outbox is not what the launcher serves.
pub async fn outbox(http: &Http, endpoint: &str) -> Result<Vec<Email>, String> {
    let (_, body) = http.get(&format!("{endpoint}/_outbox")).await?;
    let all: Vec<serde_json::Value> = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
    Ok(all
        .iter()
        .map(|m| {
            let raw = m["raw"].as_str().unwrap_or_default();
            let parsed = mail_parser::MessageParser::default().parse(raw.as_bytes());
            Email {
                to: m["destinations"].to_string(),
                subject: parsed
                    .as_ref()
                    .and_then(|p| p.subject().map(str::to_string))
                    .unwrap_or_default(),
                text: parsed
                    .as_ref()
                    .and_then(|p| p.body_text(0).map(|t| t.into_owned()))
                    .unwrap_or_default(),
            }
        })
        .collect())
}

/// One line of the counting fulfiller's log.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct FulfilCall {
    pub order_id: String,
    pub pid: u32,
    pub phase: String,
    /// When it was written, in milliseconds since the epoch.
    #[serde(default)]
    pub at_ms: u64,
}

/// The fulfiller's log; a torn last line (the writer killed mid-write) is skipped.
pub fn fulfil_calls(path: &Path) -> Vec<FulfilCall> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

/// The stream poller's given-up batches (in AWS: the on-failure queue's messages).
pub fn failures(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count()
}

/// The events no consumer has finished (a pending attribute left).
pub fn unfinished(events: &[EventRecord]) -> Vec<&EventRecord> {
    events
        .iter()
        .filter(|e| {
            e.pending_fulfillment.is_some()
                || e.pending_recovery.is_some()
                || e.pending_subscriptions.is_some()
        })
        .collect()
}
