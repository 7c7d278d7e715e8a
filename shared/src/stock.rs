//! Limited stock, a seam beside `Fulfil` and `Entitle`: units of a price are `reserve`d when
//! create-session makes a Checkout Session, `release`d when the session ends unpaid (its
//! `checkout.session.expired`, an expiry on demand, a cart refused) and `commit`ted when its
//! order is fulfilled, each exactly once per session however often and concurrently it is
//! asked, so the last units go to as many carts as there are units.
//!
//! Optional: without `STOCK_TABLE` every call is a no-op (`NoStock`). The default,
//! `StockTable`, keeps levels and reservations in the stock table (`store::StockStore`); a
//! price without a level is untracked (unlimited), so a shop tracks only what is scarce.
//!
//! The trait is object-safe (boxed futures), so services hold `Arc<dyn Stock>` without a
//! generic parameter of their own.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use http::StatusCode;

use crate::clock::Clock;
use crate::config::{self, ConfigError, Source, TableName};
use crate::http::ApiError;
use crate::ids::{AccountId, PriceId, SessionId};
use crate::store::{
    DynamoDb, MAX_TRACKED_PRICES, Reservation, ReservationState, ReserveWrite, ReservedLine,
    StockStore, StoreError,
};

/// What one Checkout Session sells: its prices and quantities, on the platform or a
/// connected account (whose levels are its own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cart {
    pub session: SessionId,
    pub account: Option<AccountId>,
    pub lines: Vec<(PriceId, u64)>,
}

pub type StockFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StockError>> + Send + 'a>>;

/// The shop's stock. Object-safe (boxed futures) so services hold `Arc<dyn Stock>` without a
/// generic parameter.
pub trait Stock: Send + Sync {
    /// Takes the cart's units of its tracked prices, all or none.
    fn reserve<'a>(&'a self, cart: &'a Cart) -> StockFuture<'a, Reserved>;
    /// Gives a session's reserved units back, unless they were sold.
    fn release<'a>(&'a self, session: &'a SessionId) -> StockFuture<'a, Released>;
    /// Records the cart as sold; takes its units now if nothing was reserved for it.
    fn commit<'a>(&'a self, cart: &'a Cart) -> StockFuture<'a, Committed>;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reserved {
    Taken,
    /// The session already has a reservation: an idempotent repeat, nothing taken.
    AlreadyTaken,
    /// No line's price has a stock level: nothing written.
    Untracked,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Released {
    Returned,
    /// Released or committed already: a sold cart is never returned.
    AlreadyReleased,
    NothingReserved,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Committed {
    /// The reservation is sold. `oversold`: prices the customer took more of on Stripe's
    /// page (an adjustable quantity, an optional item) than were left, now below zero.
    Committed {
        oversold: Vec<PriceId>,
    },
    AlreadyCommitted,
    /// No line's price has a stock level: nothing written.
    Untracked,
    /// No reservation (a recovered session, or one made before stock was on): units taken at
    /// completion, unconditionally, since the customer has paid. `oversold`: the prices now
    /// below zero.
    TakenUnreserved {
        oversold: Vec<PriceId>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum StockError {
    /// The cart asks for more units of this price (its first so) than are left.
    #[error("{price} is out of stock")]
    OutOfStock { price: PriceId },
    /// One transaction takes a cart's units, and holds 100 items.
    #[error("a cart may hold at most {MAX_TRACKED_PRICES} prices with a stock level")]
    TooManyPrices,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Out of stock is the caller's to act on (another cart, fewer units): 409 on `line_items`.
impl ApiError for StockError {
    fn status(&self) -> StatusCode {
        match self {
            Self::OutOfStock { .. } => StatusCode::CONFLICT,
            Self::TooManyPrices => StatusCode::BAD_REQUEST,
            Self::Store(err) => err.status(),
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::OutOfStock { .. } => "out_of_stock",
            Self::TooManyPrices => "invalid_request",
            Self::Store(err) => err.code(),
        }
    }

    fn param(&self) -> Option<&str> {
        match self {
            Self::OutOfStock { .. } | Self::TooManyPrices => Some("line_items"),
            Self::Store(_) => None,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct StockConfig {
    /// `None`: stock is not tracked.
    pub table: Option<TableName>,
}

impl StockConfig {
    /// # Errors
    /// `STOCK_TABLE` is set but not a valid table name.
    pub fn from_env(env: &impl Source) -> Result<Self, ConfigError> {
        Ok(Self {
            table: config::optional(env, "STOCK_TABLE")
                .map(|_| TableName::from_env(env, "STOCK_TABLE"))
                .transpose()?,
        })
    }
}

/// The `Stock` of a shop that does not track stock: every call a no-op.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoStock;

impl Stock for NoStock {
    fn reserve<'a>(&'a self, _cart: &'a Cart) -> StockFuture<'a, Reserved> {
        Box::pin(async { Ok(Reserved::Untracked) })
    }

    fn release<'a>(&'a self, _session: &'a SessionId) -> StockFuture<'a, Released> {
        Box::pin(async { Ok(Released::NothingReserved) })
    }

    fn commit<'a>(&'a self, _cart: &'a Cart) -> StockFuture<'a, Committed> {
        Box::pin(async { Ok(Committed::Untracked) })
    }
}

/// The `Stock` of `config`: the stock table when one is named, else `NoStock`.
#[must_use]
pub fn stock_from_config(config: StockConfig, dynamodb: DynamoDb) -> Arc<dyn Stock> {
    match config.table {
        Some(table) => Arc::new(StockTable::new(table, dynamodb)),
        None => Arc::new(NoStock),
    }
}

/// A reservation's state moves at most three times (none → reserved → released →
/// committed), so a call that lost a race reads it again at most this often.
const PASSES: usize = 4;

/// The default `Stock`: the stock table.
#[derive(Debug, Clone)]
pub struct StockTable {
    store: StockStore,
    clock: Clock,
}

impl StockTable {
    #[must_use]
    pub fn new(table: TableName, dynamodb: DynamoDb) -> Self {
        Self {
            store: StockStore::new(table, dynamodb),
            clock: Clock::system(),
        }
    }

    /// The same table reading time from `clock` (tests).
    #[must_use]
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    #[must_use]
    pub fn store(&self) -> &StockStore {
        &self.store
    }

    /// Sets a price's level (the operator's `ops stock set`): `available` units from now,
    /// whatever was reserved before; the price is tracked from then on.
    ///
    /// # Errors
    /// DynamoDB failed.
    pub async fn set(
        &self,
        account: Option<&AccountId>,
        price: &PriceId,
        available: i64,
    ) -> Result<(), StoreError> {
        self.store
            .set_level(account, price, available, self.clock.now())
            .await?;
        tracing::info!(
            account = account.map(AccountId::as_str),
            price = price.as_str(),
            available,
            "stock level set"
        );
        Ok(())
    }

    /// A price's level, `None` when it is untracked.
    ///
    /// # Errors
    /// DynamoDB failed.
    pub async fn level(
        &self,
        account: Option<&AccountId>,
        price: &PriceId,
    ) -> Result<Option<i64>, StoreError> {
        self.store.level(account, price).await
    }

    /// The cart's lines whose price has a level, one per price (quantities summed, in the
    /// cart's order), as a reservation holds them.
    async fn tracked(&self, cart: &Cart) -> Result<Vec<ReservedLine>, StockError> {
        let mut lines: Vec<ReservedLine> = Vec::new();
        for (price, quantity) in &cart.lines {
            let quantity = i64::try_from(*quantity).unwrap_or(i64::MAX);
            match lines.iter_mut().find(|l| &l.price == price) {
                Some(line) => line.quantity = line.quantity.saturating_add(quantity),
                None => lines.push(ReservedLine {
                    price: price.clone(),
                    quantity,
                }),
            }
        }
        lines.retain(|l| l.quantity > 0);
        if lines.is_empty() {
            return Ok(lines);
        }
        let prices: Vec<PriceId> = lines.iter().map(|l| l.price.clone()).collect();
        let levels = self.store.levels(cart.account.as_ref(), &prices).await?;
        lines.retain(|l| levels.contains_key(&l.price));
        if lines.len() > MAX_TRACKED_PRICES {
            return Err(StockError::TooManyPrices);
        }
        Ok(lines)
    }

    /// The prices of `lines` whose level is now below zero.
    async fn below_zero(
        &self,
        account: Option<&AccountId>,
        lines: &[ReservedLine],
    ) -> Result<Vec<PriceId>, StockError> {
        let prices: Vec<PriceId> = lines.iter().map(|l| l.price.clone()).collect();
        let levels = self.store.levels(account, &prices).await?;
        Ok(prices
            .into_iter()
            .filter(|p| levels.get(p).is_some_and(|&a| a < 0))
            .collect())
    }

    fn reservation(&self, cart: &Cart, lines: Vec<ReservedLine>) -> Reservation {
        Reservation::new(
            cart.session.clone(),
            cart.account.clone(),
            lines,
            self.clock.now(),
        )
    }

    async fn try_reserve(&self, cart: &Cart) -> Result<Reserved, StockError> {
        let lines = self.tracked(cart).await?;
        if lines.is_empty() {
            return Ok(Reserved::Untracked);
        }
        let reservation = self.reservation(cart, lines);
        match self.store.reserve(&reservation).await? {
            ReserveWrite::Written => Ok(Reserved::Taken),
            ReserveWrite::Exists => {
                // A repeat: taken, or sold. A released one (refused, expired) stays closed.
                match self.store.reservation(&cart.session).await? {
                    Some(prior) if prior.state == ReservationState::Released => {
                        Err(StockError::OutOfStock {
                            price: reservation.lines[0].price.clone(),
                        })
                    }
                    _ => Ok(Reserved::AlreadyTaken),
                }
            }
            ReserveWrite::Short(price) => {
                self.store.refuse(&reservation, self.clock.now()).await?;
                Err(StockError::OutOfStock { price })
            }
        }
    }

    async fn try_release(
        &self,
        session: &SessionId,
        account: &mut Option<AccountId>,
    ) -> Result<Released, StockError> {
        for _ in 0..PASSES {
            let Some(reservation) = self.store.reservation(session).await? else {
                return Ok(Released::NothingReserved);
            };
            account.clone_from(&reservation.account);
            if reservation.state != ReservationState::Reserved {
                return Ok(Released::AlreadyReleased);
            }
            if self.store.release(&reservation, self.clock.now()).await? {
                return Ok(Released::Returned);
            }
        }
        Err(raced("release"))
    }

    async fn try_commit(&self, cart: &Cart) -> Result<Committed, StockError> {
        for _ in 0..PASSES {
            let prior = self.store.reservation(&cart.session).await?;
            match prior.as_ref().map(|r| r.state) {
                Some(ReservationState::Committed) => return Ok(Committed::AlreadyCommitted),
                Some(ReservationState::Reserved) => {
                    let reserved = prior.expect("matched Some");
                    let paid = self.tracked(cart).await?;
                    let adjust = differences(&reserved.lines, &paid);
                    if self
                        .store
                        .commit_reserved(&reserved, &adjust, self.clock.now())
                        .await?
                    {
                        let oversold = if adjust.is_empty() {
                            Vec::new()
                        } else {
                            self.below_zero(cart.account.as_ref(), &adjust).await?
                        };
                        return Ok(Committed::Committed { oversold });
                    }
                }
                // Nothing held for this cart: take its units now.
                None | Some(ReservationState::Released) => {
                    let lines = self.tracked(cart).await?;
                    if lines.is_empty() {
                        return Ok(Committed::Untracked);
                    }
                    let mut taken = self.reservation(cart, lines);
                    if let Some(prior) = prior {
                        taken.created_at = prior.created_at;
                        taken.released_at = prior.released_at;
                    }
                    if self.store.take_unreserved(&taken, self.clock.now()).await? {
                        let prices: Vec<PriceId> =
                            taken.lines.iter().map(|l| l.price.clone()).collect();
                        let levels = self.store.levels(cart.account.as_ref(), &prices).await?;
                        let oversold = prices
                            .into_iter()
                            .filter(|p| levels.get(p).is_some_and(|&a| a < 0))
                            .collect();
                        return Ok(Committed::TakenUnreserved { oversold });
                    }
                }
            }
        }
        Err(raced("commit"))
    }
}

/// What was paid for beyond what was reserved, per price (negative: fewer units).
fn differences(reserved: &[ReservedLine], paid: &[ReservedLine]) -> Vec<ReservedLine> {
    let quantity = |lines: &[ReservedLine], price: &PriceId| {
        lines
            .iter()
            .filter(|l| &l.price == price)
            .map(|l| l.quantity)
            .sum::<i64>()
    };
    let mut prices: Vec<&PriceId> = reserved.iter().chain(paid).map(|l| &l.price).collect();
    prices.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    prices.dedup();
    prices
        .into_iter()
        .filter_map(|price| {
            let more = quantity(paid, price) - quantity(reserved, price);
            (more != 0).then(|| ReservedLine {
                price: price.clone(),
                quantity: more,
            })
        })
        .collect()
}

/// A call that kept losing races on one reservation: answered 503, so its trigger retries.
fn raced(call: &str) -> StockError {
    StockError::Store(StoreError::Unavailable {
        operation: "TransactWriteItems",
        detail: format!("the reservation kept changing during {call}"),
    })
}

/// An outcome as its log line names it.
trait Outcome {
    fn as_str(&self) -> &'static str;
    /// The prices a commit left below zero, worth an operator's look.
    fn oversold(&self) -> &[PriceId] {
        &[]
    }
}

impl Outcome for Reserved {
    fn as_str(&self) -> &'static str {
        match self {
            Self::Taken => "taken",
            Self::AlreadyTaken => "already_taken",
            Self::Untracked => "untracked",
        }
    }
}

impl Outcome for Released {
    fn as_str(&self) -> &'static str {
        match self {
            Self::Returned => "returned",
            Self::AlreadyReleased => "already_released",
            Self::NothingReserved => "nothing_reserved",
        }
    }
}

impl Outcome for Committed {
    fn as_str(&self) -> &'static str {
        match self {
            Self::Committed { .. } => "committed",
            Self::AlreadyCommitted => "already_committed",
            Self::Untracked => "untracked",
            Self::TakenUnreserved { .. } => "taken_unreserved",
        }
    }

    fn oversold(&self) -> &[PriceId] {
        match self {
            Self::TakenUnreserved { oversold } | Self::Committed { oversold } => oversold,
            _ => &[],
        }
    }
}

/// The one log line of a call: session, account and outcome, nothing of the customer. A
/// sale that left a level below zero is a warning: more was sold than the shop has.
fn log<T: Outcome>(
    call: &'static str,
    session: &SessionId,
    account: Option<&AccountId>,
    result: &Result<T, StockError>,
) {
    let session = session.as_str();
    let account = account.map(AccountId::as_str);
    match result {
        Ok(outcome) if !outcome.oversold().is_empty() => {
            let oversold: Vec<&str> = outcome.oversold().iter().map(PriceId::as_str).collect();
            tracing::warn!(
                session,
                account,
                outcome = outcome.as_str(),
                oversold = ?oversold,
                "stock {call}: sold below zero"
            );
        }
        Ok(outcome) => tracing::info!(session, account, outcome = outcome.as_str(), "stock {call}"),
        Err(err @ StockError::OutOfStock { price }) => tracing::info!(
            session,
            account,
            outcome = "out_of_stock",
            price = price.as_str(),
            "stock {call}: {err}"
        ),
        Err(err) => tracing::warn!(
            session,
            account,
            outcome = "failed",
            error = %err,
            "stock {call}"
        ),
    }
}

impl Stock for StockTable {
    fn reserve<'a>(&'a self, cart: &'a Cart) -> StockFuture<'a, Reserved> {
        Box::pin(async move {
            let result = self.try_reserve(cart).await;
            log("reserve", &cart.session, cart.account.as_ref(), &result);
            result
        })
    }

    fn release<'a>(&'a self, session: &'a SessionId) -> StockFuture<'a, Released> {
        Box::pin(async move {
            let mut account = None;
            let result = self.try_release(session, &mut account).await;
            log("release", session, account.as_ref(), &result);
            result
        })
    }

    fn commit<'a>(&'a self, cart: &'a Cart) -> StockFuture<'a, Committed> {
        Box::pin(async move {
            let result = self.try_commit(cart).await;
            log("commit", &cart.session, cart.account.as_ref(), &result);
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn price(id: &str) -> PriceId {
        id.parse().unwrap()
    }

    #[test]
    fn out_of_stock_is_a_conflict_on_the_line_items_naming_the_price() {
        let err = StockError::OutOfStock {
            price: price("price_poster"),
        };
        assert_eq!(err.status(), StatusCode::CONFLICT);
        assert_eq!(err.code(), "out_of_stock");
        assert_eq!(err.param(), Some("line_items"));
        assert_eq!(err.to_string(), "price_poster is out of stock");
    }

    #[test]
    fn too_many_prices_is_an_invalid_request() {
        let err = StockError::TooManyPrices;
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        assert_eq!(err.code(), "invalid_request");
        assert!(err.to_string().contains("99"), "{err}");
    }

    #[test]
    fn a_store_failure_answers_as_the_store_does() {
        let err = StockError::Store(StoreError::Unavailable {
            operation: "TransactWriteItems",
            detail: "down".into(),
        });
        assert_eq!(err.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(err.code(), "storage_unavailable");
        assert_eq!(err.param(), None);
        let response = crate::http::error(&err);
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    }

    #[test]
    fn the_answer_to_an_out_of_stock_cart_names_the_price() {
        let err = StockError::OutOfStock {
            price: price("price_poster"),
        };
        let response = crate::http::error(&err);
        assert_eq!(response.status(), StatusCode::CONFLICT);
        let body: serde_json::Value = match response.body() {
            lambda_http::Body::Text(text) => serde_json::from_str(text).unwrap(),
            other => panic!("a text body: {other:?}"),
        };
        assert_eq!(body["error"]["code"], "out_of_stock");
        assert_eq!(body["error"]["param"], "line_items");
        assert_eq!(body["error"]["message"], "price_poster is out of stock");
    }

    #[test]
    fn stock_is_off_without_a_table() {
        let off = StockConfig::from_env(&[("STOCK_TABLE", " ")]).unwrap();
        assert!(off.table.is_none());
        let on = StockConfig::from_env(&[("STOCK_TABLE", "checkout-stock")]).unwrap();
        assert_eq!(on.table.unwrap().as_str(), "checkout-stock");
        let err = StockConfig::from_env(&[("STOCK_TABLE", "x")]).unwrap_err();
        assert!(err.to_string().contains("STOCK_TABLE"), "{err}");
    }
}
