//! The stock table, the default `Stock`'s record: one item per tracked price with its units
//! `available`, and one reservation per Checkout Session saying which units it holds and
//! whether they went back or were sold. Every move of units is one `TransactWriteItems`
//! with the reservation's state change, so a unit is taken, returned or sold exactly once
//! however many invocations race on the same session or the same last units.
//!
//! Keys (`pk`): `level#<acct_… or platform>#<price_…>` (a price without one is untracked:
//! unlimited) and `cart#<cs_…>` (`state`: `reserved` | `released` | `committed`; `lines`, the
//! tracked prices and quantities; `account`; `created_at`; `ttl`, 90 days on).

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, Put, TransactWriteItem, Update};
use serde::{Deserialize, Serialize};

use super::{DynamoDb, StoreError, get_item, n, s};
use crate::config::TableName;
use crate::ids::{AccountId, PriceId, SessionId};

/// How long a reservation is kept: long past any session's life (24 hours at most) and any
/// late `checkout.session.completed` a recovery brings.
pub const RETENTION_SECS: i64 = 90 * 86_400;

/// A transaction holds 100 items: the reservation and at most this many levels.
pub const MAX_TRACKED_PRICES: usize = 99;

/// Attempts of a transaction that DynamoDB cancelled for a conflict with another one on the
/// same items (the last units, wanted by many carts at once), with jittered backoff between.
const TRANSACT_ATTEMPTS: u32 = 8;

/// Where a reservation stands. Units move only from `reserved`: a released cart gave them
/// back, a committed one was sold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReservationState {
    Reserved,
    Released,
    Committed,
}

impl ReservationState {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reserved => "reserved",
            Self::Released => "released",
            Self::Committed => "committed",
        }
    }
}

/// Units of one tracked price held by a reservation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReservedLine {
    pub price: PriceId,
    pub quantity: i64,
}

/// One session's reservation item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    pub session: SessionId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<AccountId>,
    pub state: ReservationState,
    pub lines: Vec<ReservedLine>,
    pub created_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub released_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub committed_at: Option<i64>,
    pub ttl: i64,
}

impl Reservation {
    /// A new reservation of `lines`, `reserved` from `now`, kept `RETENTION_SECS`.
    #[must_use]
    pub fn new(
        session: SessionId,
        account: Option<AccountId>,
        lines: Vec<ReservedLine>,
        now: i64,
    ) -> Self {
        Self {
            session,
            account,
            state: ReservationState::Reserved,
            lines,
            created_at: now,
            released_at: None,
            committed_at: None,
            ttl: now + RETENTION_SECS,
        }
    }
}

/// What a reservation's transaction did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReserveWrite {
    /// The reservation is recorded and its units taken.
    Written,
    /// The session already has a reservation: nothing written.
    Exists,
    /// This price (the cart's first so) has fewer units than the cart asks for.
    Short(PriceId),
}

/// A cancelled transaction: each item's reason code, when the server reported one per item.
enum Transacted {
    Written,
    Cancelled(Option<Vec<String>>),
}

#[derive(Debug, Clone)]
pub struct StockStore {
    client: DynamoDb,
    table: TableName,
}

fn level_key(account: Option<&AccountId>, price: &PriceId) -> String {
    let owner = account.map_or("platform", AccountId::as_str);
    format!("level#{owner}#{price}")
}

fn cart_key(session: &SessionId) -> String {
    format!("cart#{session}")
}

fn available(item: &HashMap<String, AttributeValue>) -> Option<i64> {
    item.get("available")?.as_n().ok()?.parse().ok()
}

impl StockStore {
    pub const KEY: &'static str = "pk";

    #[must_use]
    pub fn new(table: TableName, client: DynamoDb) -> Self {
        Self { client, table }
    }

    /// Sets a price's level to `available` units, tracking it from now on.
    ///
    /// # Errors
    /// DynamoDB failed.
    pub async fn set_level(
        &self,
        account: Option<&AccountId>,
        price: &PriceId,
        available: i64,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut update = "SET #available = :available, price = :price, updated_at = :now";
        let mut request = self
            .client
            .update_item()
            .table_name(self.table.as_str())
            .key(Self::KEY, s(level_key(account, price)))
            .expression_attribute_names("#available", "available")
            .expression_attribute_values(":available", n(available))
            .expression_attribute_values(":price", s(price.as_str()))
            .expression_attribute_values(":now", n(now));
        if let Some(account) = account {
            update = "SET #available = :available, price = :price, updated_at = :now, account = :account";
            request = request.expression_attribute_values(":account", s(account.as_str()));
        }
        request
            .update_expression(update)
            .send()
            .await
            .map_err(|err| StoreError::from_sdk("UpdateItem", err))?;
        Ok(())
    }

    /// One price's level, `None` when it is untracked.
    ///
    /// # Errors
    /// DynamoDB failed.
    pub async fn level(
        &self,
        account: Option<&AccountId>,
        price: &PriceId,
    ) -> Result<Option<i64>, StoreError> {
        #[derive(Deserialize)]
        struct Level {
            available: i64,
        }
        let level: Option<Level> = get_item(
            &self.client,
            &self.table,
            Self::KEY,
            &level_key(account, price),
        )
        .await?;
        Ok(level.map(|l| l.available))
    }

    /// The levels of `prices` (strongly consistent), untracked ones left out.
    ///
    /// # Errors
    /// DynamoDB failed.
    pub async fn levels(
        &self,
        account: Option<&AccountId>,
        prices: &[PriceId],
    ) -> Result<HashMap<PriceId, i64>, StoreError> {
        let by_key: HashMap<String, &PriceId> = prices
            .iter()
            .map(|price| (level_key(account, price), price))
            .collect();
        let keys: Vec<&String> = by_key.keys().collect();
        let mut levels = HashMap::new();
        // BatchGetItem reads 100 keys a call, and may hand some back unprocessed.
        for chunk in keys.chunks(100) {
            let mut request = KeysAndAttributes::builder().consistent_read(true);
            for key in chunk {
                request = request.keys(HashMap::from([(Self::KEY.to_string(), s(key.as_str()))]));
            }
            let mut pending = Some(request.build().expect("keys are set"));
            let mut attempt = 0;
            while let Some(request) = pending.take() {
                let output = self
                    .client
                    .batch_get_item()
                    .request_items(self.table.as_str(), request)
                    .send()
                    .await
                    .map_err(|err| StoreError::from_sdk("BatchGetItem", err))?;
                let items = output
                    .responses
                    .and_then(|mut r| r.remove(self.table.as_str()))
                    .unwrap_or_default();
                for item in items {
                    let price = item
                        .get(Self::KEY)
                        .and_then(|k| k.as_s().ok())
                        .and_then(|k| by_key.get(k));
                    if let (Some(price), Some(available)) = (price, available(&item)) {
                        levels.insert((*price).clone(), available);
                    }
                }
                pending = output
                    .unprocessed_keys
                    .and_then(|mut u| u.remove(self.table.as_str()))
                    .filter(|k| !k.keys.is_empty());
                if pending.is_some() {
                    attempt += 1;
                    if attempt >= TRANSACT_ATTEMPTS {
                        return Err(StoreError::Unavailable {
                            operation: "BatchGetItem",
                            detail: "keys left unprocessed after retries".into(),
                        });
                    }
                    backoff(attempt).await;
                }
            }
        }
        Ok(levels)
    }

    /// A session's reservation (strongly consistent).
    ///
    /// # Errors
    /// DynamoDB failed, or the item read back is not of this shape.
    pub async fn reservation(
        &self,
        session: &SessionId,
    ) -> Result<Option<Reservation>, StoreError> {
        get_item(&self.client, &self.table, Self::KEY, &cart_key(session)).await
    }

    /// Records `reservation` (state `reserved`) and takes its units, in one transaction that
    /// fails if the session already has a reservation or a price has too few units.
    ///
    /// # Errors
    /// DynamoDB failed, or kept cancelling the transaction for conflicts.
    pub async fn reserve(&self, reservation: &Reservation) -> Result<ReserveWrite, StoreError> {
        let mut items = vec![self.put_reservation(reservation, false)?];
        for line in &reservation.lines {
            items.push(self.level_update(
                reservation.account.as_ref(),
                &line.price,
                "SET #available = #available - :q",
                line.quantity,
                Some("#available >= :q"),
            ));
        }
        for _ in 0..TRANSACT_ATTEMPTS {
            match self.transact(&items).await? {
                Transacted::Written => return Ok(ReserveWrite::Written),
                Transacted::Cancelled(Some(codes)) => {
                    let failed = |code: &String| code == "ConditionalCheckFailed";
                    if codes.first().is_some_and(failed) {
                        return Ok(ReserveWrite::Exists);
                    }
                    if let Some(i) = codes.iter().skip(1).position(failed) {
                        return Ok(ReserveWrite::Short(reservation.lines[i].price.clone()));
                    }
                }
                Transacted::Cancelled(None) => {
                    // No reasons to go by: read back which condition failed.
                    if self.reservation(&reservation.session).await?.is_some() {
                        return Ok(ReserveWrite::Exists);
                    }
                    let prices: Vec<PriceId> =
                        reservation.lines.iter().map(|l| l.price.clone()).collect();
                    let levels = self.levels(reservation.account.as_ref(), &prices).await?;
                    let short = reservation
                        .lines
                        .iter()
                        .find(|l| levels.get(&l.price).is_none_or(|&a| a < l.quantity));
                    if let Some(line) = short {
                        return Ok(ReserveWrite::Short(line.price.clone()));
                    }
                }
            }
        }
        Err(StoreError::Unavailable {
            operation: "TransactWriteItems",
            detail: "the reservation's transaction kept being cancelled".into(),
        })
    }

    /// Marks a `reserved` reservation `released` and gives its units back. `false` when it
    /// is no longer `reserved` (or the server gave no reason: the caller reads it again).
    ///
    /// # Errors
    /// DynamoDB failed, or kept cancelling the transaction for conflicts.
    pub async fn release(&self, reservation: &Reservation, now: i64) -> Result<bool, StoreError> {
        let mut items =
            vec![self.move_reserved(&reservation.session, ReservationState::Released, now)];
        for line in &reservation.lines {
            items.push(self.level_update(
                reservation.account.as_ref(),
                &line.price,
                "ADD #available :q",
                line.quantity,
                None,
            ));
        }
        Ok(matches!(self.transact(&items).await?, Transacted::Written))
    }

    /// Marks a `reserved` reservation `committed`: its units were taken when it was made.
    /// `false` when it is no longer `reserved`.
    ///
    /// # Errors
    /// DynamoDB failed, or kept cancelling the transaction for conflicts.
    /// `adjust`: units sold beyond (or short of, when negative) what was reserved, taken
    /// (or given back) in the same transaction with no floor, since the customer has paid:
    /// Stripe's page lets a customer change an adjustable quantity and add optional items.
    pub async fn commit_reserved(
        &self,
        reservation: &Reservation,
        adjust: &[ReservedLine],
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut items =
            vec![self.move_reserved(&reservation.session, ReservationState::Committed, now)];
        for line in adjust {
            items.push(self.level_update(
                reservation.account.as_ref(),
                &line.price,
                "ADD #available :q",
                line.quantity.saturating_neg(),
                None,
            ));
        }
        Ok(matches!(self.transact(&items).await?, Transacted::Written))
    }

    /// Records `reservation` as `committed` where the session has none or a released one, and
    /// takes its units with no floor: the customer has paid, so a level may go below zero.
    /// `false` when the session's reservation is (now) reserved or committed.
    ///
    /// # Errors
    /// DynamoDB failed, or kept cancelling the transaction for conflicts.
    pub async fn take_unreserved(
        &self,
        reservation: &Reservation,
        now: i64,
    ) -> Result<bool, StoreError> {
        let committed = Reservation {
            state: ReservationState::Committed,
            committed_at: Some(now),
            ..reservation.clone()
        };
        let mut items = vec![self.put_reservation(&committed, true)?];
        for line in &reservation.lines {
            items.push(self.level_update(
                reservation.account.as_ref(),
                &line.price,
                "ADD #available :q",
                line.quantity.saturating_neg(),
                None,
            ));
        }
        Ok(matches!(self.transact(&items).await?, Transacted::Written))
    }

    /// Puts `reservation` whole: where the session has no reservation yet, or (with
    /// `over_released`) where its reservation was released.
    fn put_reservation(
        &self,
        reservation: &Reservation,
        over_released: bool,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut item: HashMap<String, AttributeValue> = serde_dynamo::to_item(reservation)?;
        item.insert(Self::KEY.into(), s(cart_key(&reservation.session)));
        let mut put = Put::builder()
            .table_name(self.table.as_str())
            .set_item(Some(item));
        put = if over_released {
            put.condition_expression("attribute_not_exists(pk) OR #state = :released")
                .expression_attribute_names("#state", "state")
                .expression_attribute_values(":released", s(ReservationState::Released.as_str()))
        } else {
            put.condition_expression("attribute_not_exists(pk)")
        };
        let put = put.build().expect("table and item are set");
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// Records a cart refused for stock as `released` with nothing taken, unless the session
    /// has a reservation already: a retry of the same create (the caller's `Idempotency-Key`
    /// makes Stripe answer the same, now expired, session) is then refused again instead of
    /// taking units for a session nobody can pay.
    ///
    /// # Errors
    /// DynamoDB failed.
    pub async fn refuse(&self, reservation: &Reservation, now: i64) -> Result<(), StoreError> {
        let refused = Reservation {
            state: ReservationState::Released,
            lines: Vec::new(),
            released_at: Some(now),
            ..reservation.clone()
        };
        let items = [self.put_reservation(&refused, false)?];
        // Cancelled: the session has a reservation of its own, which says what happened.
        self.transact(&items).await?;
        Ok(())
    }

    /// `reserved` → `to`, on the condition that it is still `reserved`.
    fn move_reserved(
        &self,
        session: &SessionId,
        to: ReservationState,
        now: i64,
    ) -> TransactWriteItem {
        let update = Update::builder()
            .table_name(self.table.as_str())
            .key(Self::KEY, s(cart_key(session)))
            .update_expression(format!("SET #state = :to, {}_at = :now", to.as_str()))
            .condition_expression("#state = :reserved")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":to", s(to.as_str()))
            .expression_attribute_values(":reserved", s(ReservationState::Reserved.as_str()))
            .expression_attribute_values(":now", n(now))
            .build()
            .expect("table, key and expression are set");
        TransactWriteItem::builder().update(update).build()
    }

    /// `expression` on one price's level, with `q` as `:q`.
    fn level_update(
        &self,
        account: Option<&AccountId>,
        price: &PriceId,
        expression: &str,
        q: i64,
        condition: Option<&str>,
    ) -> TransactWriteItem {
        let update = Update::builder()
            .table_name(self.table.as_str())
            .key(Self::KEY, s(level_key(account, price)))
            .update_expression(expression)
            .set_condition_expression(condition.map(str::to_string))
            .expression_attribute_names("#available", "available")
            .expression_attribute_values(":q", n(q))
            .build()
            .expect("table, key and expression are set");
        TransactWriteItem::builder().update(update).build()
    }

    /// Runs one transaction, again after a jittered pause while DynamoDB cancels it only for
    /// conflicts (or throttling) with no condition failed.
    async fn transact(&self, items: &[TransactWriteItem]) -> Result<Transacted, StoreError> {
        let mut attempt = 0;
        loop {
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.to_vec()))
                .send()
                .await;
            let Err(err) = result else {
                return Ok(Transacted::Written);
            };
            let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) =
                err.as_service_error()
            else {
                return Err(StoreError::from_sdk("TransactWriteItems", err));
            };
            let codes: Vec<String> = cancelled
                .cancellation_reasons()
                .iter()
                .map(|r| r.code().unwrap_or("None").to_string())
                .collect();
            let condition_failed = codes.iter().any(|c| c == "ConditionalCheckFailed");
            let retryable = codes
                .iter()
                .any(|c| c == "TransactionConflict" || c == "ThrottlingError");
            let unexpected = codes.iter().any(|c| {
                !matches!(
                    c.as_str(),
                    "None" | "ConditionalCheckFailed" | "TransactionConflict" | "ThrottlingError"
                )
            });
            if unexpected {
                return Err(StoreError::from_sdk("TransactWriteItems", err));
            }
            if retryable && !condition_failed {
                attempt += 1;
                if attempt >= TRANSACT_ATTEMPTS {
                    return Err(StoreError::from_sdk("TransactWriteItems", err));
                }
                backoff(attempt).await;
                continue;
            }
            let reported = codes.len() == items.len() && condition_failed;
            return Ok(Transacted::Cancelled(reported.then_some(codes)));
        }
    }
}

/// Full jitter over an exponential ceiling (20 ms, 40 ms, … at most 400 ms), so the carts
/// that collided do not collide again in step.
async fn backoff(attempt: u32) {
    let ceiling = Duration::from_millis(20)
        .saturating_mul(1 << attempt.min(5))
        .min(Duration::from_millis(400));
    tokio::time::sleep(ceiling.mul_f64(fastrand::f64())).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_separate_accounts_and_carts() {
        let price: PriceId = "price_poster".parse().unwrap();
        let account: AccountId = "acct_1".parse().unwrap();
        assert_eq!(level_key(None, &price), "level#platform#price_poster");
        assert_eq!(
            level_key(Some(&account), &price),
            "level#acct_1#price_poster"
        );
        assert_eq!(cart_key(&"cs_test_1".parse().unwrap()), "cart#cs_test_1");
    }

    #[test]
    fn a_reservation_is_stored_with_its_state_in_words() {
        let reservation = Reservation::new(
            "cs_test_1".parse().unwrap(),
            None,
            vec![ReservedLine {
                price: "price_a".parse().unwrap(),
                quantity: 2,
            }],
            10,
        );
        let item: HashMap<String, AttributeValue> = serde_dynamo::to_item(&reservation).unwrap();
        assert_eq!(item["state"], s("reserved"));
        assert_eq!(item["ttl"], n(10 + 90 * 86_400));
        assert!(!item.contains_key("account"));
        let back: Reservation = serde_dynamo::from_item(item).unwrap();
        assert_eq!(back, reservation);
    }
}
