//! The shoppers: a seeded mix of carts, each played against the stack (create-session, the
//! success page) and the simulator's hosted page (pay, pay late, let expire), as a browser
//! would. Several carts share each address, so recovery's per-address window and its "not
//! after a purchase" rule are exercised.

use std::sync::Arc;
use std::time::{Duration, Instant};

use checkout_core::store::EventStore;
use checkout_core::stripe::EventType;
use http::Method;

use crate::client::Http;

/// What a cart does, with its share of the mix (per 100).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// Paid at once; half of them poll the success page while the events race it.
    Paid,
    /// Paid at once on a connected account (a Connect direct charge).
    Connect,
    /// A subscription's first payment.
    Subscription,
    /// Paid with a delayed method that succeeds a few seconds later.
    DelayedSucceeded,
    /// Paid with a delayed method that fails.
    DelayedFailed,
    /// Left to expire by a shopper who opted in to promotions.
    AbandonedConsent,
    /// Left to expire without the opt-in.
    AbandonedNoConsent,
    /// Left open, the same address buys another cart, then the first expires (opted in):
    /// recovery must not email someone who bought since.
    AbandonedThenBought,
}

const MIX: [(Kind, u32); 8] = [
    (Kind::Paid, 30),
    (Kind::Connect, 10),
    (Kind::Subscription, 8),
    (Kind::DelayedSucceeded, 10),
    (Kind::DelayedFailed, 8),
    (Kind::AbandonedConsent, 16),
    (Kind::AbandonedNoConsent, 10),
    (Kind::AbandonedThenBought, 8),
];

impl Kind {
    /// Whether the cart ends in a paid order.
    pub fn pays(self) -> bool {
        matches!(
            self,
            Self::Paid
                | Self::Connect
                | Self::Subscription
                | Self::DelayedSucceeded
                | Self::AbandonedThenBought
        )
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Paid => "paid",
            Self::Connect => "paid (Connect)",
            Self::Subscription => "subscription",
            Self::DelayedSucceeded => "delayed, succeeded",
            Self::DelayedFailed => "delayed, failed",
            Self::AbandonedConsent => "abandoned, opted in",
            Self::AbandonedNoConsent => "abandoned, no opt-in",
            Self::AbandonedThenBought => "abandoned, then bought",
        }
    }
}

/// One cart as played.
#[derive(Debug, Clone)]
pub struct Cart {
    pub kind: Kind,
    pub email: String,
    pub account: Option<String>,
    /// The paid session (for the paying kinds) or the abandoned one.
    pub session: Option<String>,
    /// `AbandonedThenBought`: the abandoned session (`session` is the bought one).
    pub abandoned: Option<String>,
    /// Success-page answers, by status (0: the stack was down).
    pub polls: Vec<u16>,
    /// What went wrong playing it (a create refused, a page that did not answer).
    pub error: Option<String>,
}

/// What every shopper shares.
pub struct Shop {
    pub http: Http,
    pub stack: String,
    pub simulator: String,
    pub origin: String,
    pub accounts: Vec<String>,
    pub events: EventStore,
}

/// The carts of a run, drawn from `seed`: `carts` of them over `carts / 3` addresses, with
/// delayed and failed payments on addresses of their own (so their notices are theirs).
pub fn plan(seed: u64, carts: usize, accounts: &[String]) -> Vec<Cart> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let total: u32 = MIX.iter().map(|(_, w)| w).sum();
    let addresses = (carts / 3).max(1);
    (0..carts)
        .map(|i| {
            let mut pick = rng.u32(0..total);
            let kind = MIX
                .iter()
                .find(|(_, w)| {
                    if pick < *w {
                        true
                    } else {
                        pick -= w;
                        false
                    }
                })
                .map_or(Kind::Paid, |(k, _)| *k);
            let email = match kind {
                Kind::DelayedSucceeded | Kind::DelayedFailed => {
                    format!("storm-{seed}-own-{i}@example.com")
                }
                _ => format!("storm-{seed}-{}@example.com", rng.usize(0..addresses)),
            };
            let account =
                (kind == Kind::Connect).then(|| accounts[rng.usize(0..accounts.len())].clone());
            Cart {
                kind,
                email,
                account,
                session: None,
                abandoned: None,
                polls: Vec::new(),
                error: None,
            }
        })
        .collect()
}

/// Plays `cart`; `rng` draws its quantities and delays.
pub async fn play(shop: Arc<Shop>, mut cart: Cart, seed: u64) -> Cart {
    let mut rng = fastrand::Rng::with_seed(seed);
    if let Err(err) = run(&shop, &mut cart, &mut rng).await {
        cart.error = Some(err);
    }
    cart
}

async fn run(shop: &Shop, cart: &mut Cart, rng: &mut fastrand::Rng) -> Result<(), String> {
    let key = format!("storm-{}", rng.u64(..));
    let session = create(shop, cart, &key, rng).await?;
    cart.session = Some(session.clone());
    let email = cart.email.clone();
    let consent = if rng.bool() { "on" } else { "" };
    match cart.kind {
        Kind::Paid | Kind::Connect | Kind::Subscription => {
            act(
                shop,
                &session,
                &[("action", "pay"), ("email", &email), ("consent", consent)],
            )
            .await?;
            if cart.kind == Kind::Paid && rng.bool() {
                cart.polls = poll_success_page(shop, &session).await;
            }
        }
        Kind::DelayedSucceeded | Kind::DelayedFailed => {
            act(
                shop,
                &session,
                &[("action", "pay-delayed"), ("email", &email)],
            )
            .await?;
            tokio::time::sleep(Duration::from_millis(rng.u64(1_000..4_000))).await;
            let outcome = if cart.kind == Kind::DelayedSucceeded {
                "succeeded"
            } else {
                "failed"
            };
            settle(shop, &session, outcome).await?;
        }
        Kind::AbandonedConsent | Kind::AbandonedNoConsent => {
            tokio::time::sleep(Duration::from_millis(rng.u64(0..2_000))).await;
            let consent = if cart.kind == Kind::AbandonedConsent {
                "on"
            } else {
                ""
            };
            act(
                shop,
                &session,
                &[
                    ("action", "expire"),
                    ("email", &email),
                    ("consent", consent),
                ],
            )
            .await?;
        }
        Kind::AbandonedThenBought => {
            let bought = create(shop, cart, &format!("{key}-bought"), rng).await?;
            cart.abandoned = Some(session.clone());
            cart.session = Some(bought.clone());
            act(
                shop,
                &bought,
                &[("action", "pay"), ("email", &email), ("consent", "on")],
            )
            .await?;
            purchase_seen(shop, &bought).await?;
            act(
                shop,
                &session,
                &[("action", "expire"), ("email", &email), ("consent", "on")],
            )
            .await?;
        }
    }
    Ok(())
}

/// `POST /checkout/sessions` from the shop's page, retried with the same `Idempotency-Key`
/// while the stack is down or failing (5xx), as a careful page script would.
async fn create(
    shop: &Shop,
    cart: &Cart,
    key: &str,
    rng: &mut fastrand::Rng,
) -> Result<String, String> {
    let (price, mode) = match cart.kind {
        Kind::Subscription => ("price_plan", "subscription"),
        _ if rng.bool() => ("price_mug", "payment"),
        _ => ("price_tea", "payment"),
    };
    let mut body = serde_json::json!({
        "line_items": [{"price": price, "quantity": rng.u32(1..=3)}],
        "mode": mode,
    });
    if let Some(account) = &cart.account {
        body["account"] = account.as_str().into();
    }
    let body = body.to_string();
    let url = format!("{}/checkout/sessions", shop.stack);
    let mut last = String::new();
    for attempt in 0..40u32 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt.min(6)))).await;
        }
        let answer = shop
            .http
            .send(
                Method::POST,
                &url,
                &[
                    ("content-type", "application/json"),
                    ("origin", &shop.origin),
                    ("idempotency-key", key),
                ],
                body.clone(),
            )
            .await;
        match answer {
            Ok((status, body)) if status.as_u16() == 201 => {
                let created: serde_json::Value =
                    serde_json::from_slice(&body).map_err(|e| e.to_string())?;
                return created["id"]
                    .as_str()
                    .map(str::to_string)
                    .ok_or_else(|| format!("201 without an id: {created}"));
            }
            Ok((status, body)) if status.is_server_error() => {
                last = format!("{status} {}", String::from_utf8_lossy(&body));
            }
            Ok((status, body)) => {
                return Err(format!(
                    "create-session answered {status}: {}",
                    String::from_utf8_lossy(&body)
                ));
            }
            Err(err) => last = err,
        }
    }
    Err(format!("create-session never answered 201: {last}"))
}

/// The hosted page's form (the simulator, reached directly: shoppers are not the stack).
async fn act(shop: &Shop, session: &str, fields: &[(&str, &str)]) -> Result<(), String> {
    let url = format!("{}/c/pay/{session}", shop.simulator);
    match shop.http.post_form(&url, fields).await {
        Ok((status, _)) if status.is_success() || status.is_redirection() => Ok(()),
        Ok((status, body)) => Err(format!(
            "the hosted page answered {status}: {}",
            String::from_utf8_lossy(&body)
        )),
        Err(err) => Err(err),
    }
}

async fn settle(shop: &Shop, session: &str, outcome: &str) -> Result<(), String> {
    let url = format!("{}/c/pay/{session}/settle", shop.simulator);
    match shop.http.post_form(&url, &[("outcome", outcome)]).await {
        Ok((status, _)) if status.is_success() || status.is_redirection() => Ok(()),
        Ok((status, _)) => Err(format!("settle answered {status}")),
        Err(err) => Err(err),
    }
}

/// The success page, as a shopper's browser polls it right after paying: up to 20 times,
/// 250 ms apart, until it says the order is fulfilled.
async fn poll_success_page(shop: &Shop, session: &str) -> Vec<u16> {
    let url = format!("{}/checkout/complete?session_id={session}", shop.stack);
    let mut statuses = Vec::new();
    for _ in 0..20 {
        let answer = shop.http.get(&url).await;
        let (status, fulfilled) = match &answer {
            Ok((status, body)) => (
                status.as_u16(),
                serde_json::from_slice::<serde_json::Value>(body)
                    .is_ok_and(|v| v["status"] == "fulfilled"),
            ),
            Err(_) => (0, false),
        };
        statuses.push(status);
        if fulfilled {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    statuses
}

/// Waits until recovery has recorded `session`'s purchase (its `checkout.session.completed`
/// has a recovery outcome), so that the cart abandoned before it expires after it.
async fn purchase_seen(shop: &Shop, session: &str) -> Result<(), String> {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(240) {
        let recorded = shop.events.for_object(session).await.is_ok_and(|events| {
            events.iter().any(|e| {
                e.kind == EventType::CheckoutSessionCompleted
                    && e.outcome_recovery.is_some()
                    && e.pending_recovery.is_none()
            })
        });
        if recorded {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(format!("recovery never recorded the purchase {session}"))
}
