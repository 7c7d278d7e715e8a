//! Limited stock through the real `StockTable` against moto: the last units go to as many
//! carts as there are units however many race for them, and each session's units are
//! taken, returned or sold exactly once however often (and concurrently) it is asked.
//! Levels are read back from the table, never from the seam's answers.
//!
//! moto applies one request at a time (infra/moto_server.py), so it never cancels a
//! transaction for a conflict as DynamoDB does under contention: the last tests stand a fake
//! DynamoDB endpoint in front of the same code to answer `TransactionConflict`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use checkout_core::{
    config::TableName,
    http::ApiError,
    ids::{AccountId, PriceId, SessionId},
    stock::{
        Cart, Committed, NoStock, Released, Reserved, Stock, StockConfig, StockError, StockTable,
        stock_from_config,
    },
    store::{DynamoDb, ReservationState},
};
use integration_tests::*;
use serde_json::{Value, json};
use wiremock::matchers::{header, method};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

fn price(id: &str) -> PriceId {
    id.parse().unwrap()
}

fn session(id: &str) -> SessionId {
    id.parse().unwrap()
}

fn cart(session_id: &str, lines: &[(&str, u64)]) -> Cart {
    Cart {
        session: session(session_id),
        account: None,
        lines: lines.iter().map(|(p, q)| (price(p), *q)).collect(),
    }
}

async fn stock() -> (DynamoDb, TableName, Arc<StockTable>) {
    let client = dynamodb().await;
    let table = stock_table(&client).await;
    let stock = Arc::new(StockTable::new(table.clone(), client.clone()));
    (client, table, stock)
}

async fn level(stock: &StockTable, id: &str) -> Option<i64> {
    stock.level(None, &price(id)).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_carts_racing_for_the_last_five_units_take_five_and_fifteen_are_refused() {
    let (client, table, stock) = stock().await;
    stock.set(None, &price("price_poster"), 5).await.unwrap();

    let mut tasks = Vec::new();
    for i in 0..20 {
        let stock = stock.clone();
        tasks.push(tokio::spawn(async move {
            stock
                .reserve(&cart(&format!("cs_test_race_{i}"), &[("price_poster", 1)]))
                .await
        }));
    }
    let (mut taken, mut refused) = (0, 0);
    for task in tasks {
        match task.await.unwrap() {
            Ok(Reserved::Taken) => taken += 1,
            Err(StockError::OutOfStock { price }) => {
                assert_eq!(price.as_str(), "price_poster");
                refused += 1;
            }
            other => panic!("neither taken nor out of stock: {other:?}"),
        }
    }

    assert_eq!((taken, refused), (5, 15));
    assert_eq!(level(&stock, "price_poster").await, Some(0));
    assert_eq!(
        item_count(&client, &table).await,
        1 + 5 + 15,
        "the level, one reservation per cart served and one refusal per cart refused"
    );
}

#[tokio::test]
async fn a_cart_reserves_its_tracked_prices_only_and_all_of_them_or_none() {
    let (_client, _table, stock) = stock().await;
    stock.set(None, &price("price_poster"), 10).await.unwrap();
    stock.set(None, &price("price_print"), 3).await.unwrap();

    let mixed = cart(
        "cs_test_mixed",
        &[("price_poster", 2), ("price_ebook", 7), ("price_poster", 1)],
    );
    assert_eq!(stock.reserve(&mixed).await.unwrap(), Reserved::Taken);
    assert_eq!(level(&stock, "price_poster").await, Some(7), "2 + 1 taken");
    assert_eq!(level(&stock, "price_ebook").await, None, "still untracked");
    let reservation = stock
        .store()
        .reservation(&session("cs_test_mixed"))
        .await
        .unwrap()
        .expect("a reservation");
    assert_eq!(reservation.state, ReservationState::Reserved);
    let lines: Vec<(&str, i64)> = reservation
        .lines
        .iter()
        .map(|l| (l.price.as_str(), l.quantity))
        .collect();
    assert_eq!(
        lines,
        [("price_poster", 3)],
        "only the tracked price, merged"
    );

    // One price short: nothing is taken of the other.
    let short = cart("cs_test_short", &[("price_poster", 1), ("price_print", 4)]);
    match stock.reserve(&short).await {
        Err(StockError::OutOfStock { price }) => assert_eq!(price.as_str(), "price_print"),
        other => panic!("out of stock expected: {other:?}"),
    }
    assert_eq!(level(&stock, "price_poster").await, Some(7));
    assert_eq!(level(&stock, "price_print").await, Some(3));
    // Refused: recorded closed, with nothing taken, so a retry of it stays refused.
    let refused = stock
        .store()
        .reservation(&session("cs_test_short"))
        .await
        .unwrap()
        .expect("the refusal is recorded");
    assert_eq!(refused.state, ReservationState::Released);
    assert!(refused.lines.is_empty());
    assert!(matches!(
        stock.reserve(&short).await,
        Err(StockError::OutOfStock { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reserving_one_session_again_takes_nothing_more() {
    let (_client, _table, stock) = stock().await;
    stock.set(None, &price("price_poster"), 4).await.unwrap();
    let once = cart("cs_test_again", &[("price_poster", 2)]);

    assert_eq!(stock.reserve(&once).await.unwrap(), Reserved::Taken);
    assert_eq!(stock.reserve(&once).await.unwrap(), Reserved::AlreadyTaken);
    assert_eq!(level(&stock, "price_poster").await, Some(2));

    // And concurrently, for a session not reserved yet.
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let stock = stock.clone();
        tasks.push(tokio::spawn(async move {
            stock
                .reserve(&cart("cs_test_again_race", &[("price_poster", 1)]))
                .await
                .unwrap()
        }));
    }
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }
    assert_eq!(
        outcomes.iter().filter(|o| **o == Reserved::Taken).count(),
        1
    );
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| **o == Reserved::AlreadyTaken)
            .count(),
        9
    );
    assert_eq!(level(&stock, "price_poster").await, Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_concurrent_releases_give_the_units_back_once() {
    let (_client, _table, stock) = stock().await;
    stock.set(None, &price("price_poster"), 5).await.unwrap();
    stock.set(None, &price("price_print"), 5).await.unwrap();
    let expiring = cart(
        "cs_test_expired",
        &[("price_poster", 2), ("price_print", 1)],
    );
    assert_eq!(stock.reserve(&expiring).await.unwrap(), Reserved::Taken);
    assert_eq!(level(&stock, "price_poster").await, Some(3));

    let mut tasks = Vec::new();
    for _ in 0..10 {
        let stock = stock.clone();
        tasks.push(tokio::spawn(async move {
            stock.release(&session("cs_test_expired")).await.unwrap()
        }));
    }
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }

    assert_eq!(
        outcomes
            .iter()
            .filter(|o| **o == Released::Returned)
            .count(),
        1
    );
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| **o == Released::AlreadyReleased)
            .count(),
        9
    );
    assert_eq!(level(&stock, "price_poster").await, Some(5));
    assert_eq!(level(&stock, "price_print").await, Some(5));
    assert_eq!(
        stock
            .release(&session("cs_test_never_reserved"))
            .await
            .unwrap(),
        Released::NothingReserved
    );
}

#[tokio::test]
async fn a_sold_cart_is_never_released_and_is_committed_once() {
    let (_client, _table, stock) = stock().await;
    stock.set(None, &price("price_poster"), 5).await.unwrap();
    let sold = cart("cs_test_sold", &[("price_poster", 2)]);
    assert_eq!(stock.reserve(&sold).await.unwrap(), Reserved::Taken);

    assert_eq!(
        stock.commit(&sold).await.unwrap(),
        Committed::Committed { oversold: vec![] }
    );
    assert_eq!(
        stock.commit(&sold).await.unwrap(),
        Committed::AlreadyCommitted
    );
    assert_eq!(
        stock.release(&session("cs_test_sold")).await.unwrap(),
        Released::AlreadyReleased
    );
    assert_eq!(
        level(&stock, "price_poster").await,
        Some(3),
        "taken at reserve, and only then"
    );
    let reservation = stock
        .store()
        .reservation(&session("cs_test_sold"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reservation.state, ReservationState::Committed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_concurrent_commits_of_one_cart_sell_it_once() {
    let (_client, _table, stock) = stock().await;
    stock.set(None, &price("price_poster"), 5).await.unwrap();
    let racing = cart("cs_test_commit_race", &[("price_poster", 2)]);
    assert_eq!(stock.reserve(&racing).await.unwrap(), Reserved::Taken);

    let mut commits = Vec::new();
    for _ in 0..10 {
        let (stock, racing) = (stock.clone(), racing.clone());
        commits.push(tokio::spawn(
            async move { stock.commit(&racing).await.unwrap() },
        ));
    }
    let mut outcomes = Vec::new();
    for task in commits {
        outcomes.push(task.await.unwrap());
    }
    let count = |wanted: &Committed| outcomes.iter().filter(|o| *o == wanted).count();
    assert_eq!(count(&Committed::Committed { oversold: vec![] }), 1);
    assert_eq!(count(&Committed::AlreadyCommitted), 9);
    assert_eq!(level(&stock, "price_poster").await, Some(3));
}

/// A session expiring while it completes (the expiry's release racing the fulfilment's
/// commit): whichever lands first, the cart ends sold, its units taken exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn releases_racing_commits_of_one_cart_leave_it_sold_once() {
    for round in 0..5 {
        let (_client, _table, stock) = stock().await;
        stock.set(None, &price("price_poster"), 5).await.unwrap();
        let id = format!("cs_test_expiry_race_{round}");
        let racing = cart(&id, &[("price_poster", 2)]);
        assert_eq!(stock.reserve(&racing).await.unwrap(), Reserved::Taken);

        let mut commits = Vec::new();
        let mut releases = Vec::new();
        for _ in 0..5 {
            let (committer, racing) = (stock.clone(), racing.clone());
            commits.push(tokio::spawn(async move {
                committer.commit(&racing).await.unwrap()
            }));
            let (releaser, id) = (stock.clone(), id.clone());
            releases.push(tokio::spawn(async move {
                releaser.release(&session(&id)).await.unwrap()
            }));
        }
        let mut sold = 0;
        for task in commits {
            match task.await.unwrap() {
                Committed::Committed { .. } | Committed::TakenUnreserved { .. } => sold += 1,
                Committed::AlreadyCommitted => {}
                Committed::Untracked => panic!("the poster is tracked"),
            }
        }
        let mut returned = 0;
        for task in releases {
            match task.await.unwrap() {
                Released::Returned => returned += 1,
                Released::AlreadyReleased => {}
                Released::NothingReserved => panic!("it was reserved"),
            }
        }
        assert_eq!(sold, 1, "round {round}: sold once");
        assert!(returned <= 1, "round {round}: returned {returned} times");
        assert_eq!(
            level(&stock, "price_poster").await,
            Some(3),
            "round {round}: 2 units gone, whichever way"
        );
        let reservation = stock.store().reservation(&session(&id)).await.unwrap();
        assert_eq!(reservation.unwrap().state, ReservationState::Committed);
    }
}

#[tokio::test]
async fn a_commit_without_reservation_takes_the_units_and_names_what_is_oversold() {
    let (_client, _table, stock) = stock().await;
    stock.set(None, &price("price_poster"), 1).await.unwrap();
    stock.set(None, &price("price_print"), 5).await.unwrap();

    // Made before stock was on, paid now: the customer has paid, so the level goes below 0.
    let recovered = cart(
        "cs_test_recovered",
        &[("price_poster", 3), ("price_print", 2), ("price_ebook", 1)],
    );
    assert_eq!(
        stock.commit(&recovered).await.unwrap(),
        Committed::TakenUnreserved {
            oversold: vec![price("price_poster")]
        }
    );
    assert_eq!(level(&stock, "price_poster").await, Some(-2));
    assert_eq!(level(&stock, "price_print").await, Some(3));
    assert_eq!(level(&stock, "price_ebook").await, None);
    assert_eq!(
        stock.commit(&recovered).await.unwrap(),
        Committed::AlreadyCommitted
    );
    assert_eq!(level(&stock, "price_poster").await, Some(-2), "taken once");
    assert_eq!(
        stock.release(&session("cs_test_recovered")).await.unwrap(),
        Released::AlreadyReleased
    );

    // Expired (units returned), then completed after all (a recovery): taken at completion.
    let late = cart("cs_test_late", &[("price_print", 2)]);
    assert_eq!(stock.reserve(&late).await.unwrap(), Reserved::Taken);
    assert_eq!(
        stock.release(&session("cs_test_late")).await.unwrap(),
        Released::Returned
    );
    assert_eq!(level(&stock, "price_print").await, Some(3));
    assert_eq!(
        stock.commit(&late).await.unwrap(),
        Committed::TakenUnreserved { oversold: vec![] }
    );
    assert_eq!(level(&stock, "price_print").await, Some(1));
    assert_eq!(
        stock.commit(&late).await.unwrap(),
        Committed::AlreadyCommitted
    );
    assert_eq!(level(&stock, "price_print").await, Some(1));
}

#[tokio::test]
async fn untracked_carts_write_nothing() {
    let (client, table, stock) = stock().await;
    let untracked = cart(
        "cs_test_untracked",
        &[("price_ebook", 2), ("price_course", 1)],
    );

    assert_eq!(
        stock.reserve(&untracked).await.unwrap(),
        Reserved::Untracked
    );
    assert_eq!(
        stock.release(&session("cs_test_untracked")).await.unwrap(),
        Released::NothingReserved
    );
    assert_eq!(
        stock.commit(&untracked).await.unwrap(),
        Committed::Untracked
    );
    assert_eq!(item_count(&client, &table).await, 0);
}

#[tokio::test]
async fn a_connected_account_has_levels_of_its_own() {
    let (_client, _table, stock) = stock().await;
    let account: AccountId = "acct_1Shop".parse().unwrap();
    stock
        .set(Some(&account), &price("price_poster"), 1)
        .await
        .unwrap();

    let platform = cart("cs_test_platform", &[("price_poster", 1)]);
    assert_eq!(stock.reserve(&platform).await.unwrap(), Reserved::Untracked);
    let connected = Cart {
        account: Some(account.clone()),
        ..cart("cs_test_connected", &[("price_poster", 1)])
    };
    assert_eq!(stock.reserve(&connected).await.unwrap(), Reserved::Taken);
    assert_eq!(
        stock
            .level(Some(&account), &price("price_poster"))
            .await
            .unwrap(),
        Some(0)
    );
    assert_eq!(level(&stock, "price_poster").await, None);
    assert_eq!(
        stock.release(&session("cs_test_connected")).await.unwrap(),
        Released::Returned
    );
    assert_eq!(
        stock
            .level(Some(&account), &price("price_poster"))
            .await
            .unwrap(),
        Some(1)
    );
}

#[tokio::test]
async fn without_a_stock_table_every_call_is_a_no_op() {
    let client = dynamodb().await;
    let a_cart = cart("cs_test_off", &[("price_poster", 1)]);
    let off = stock_from_config(
        StockConfig::from_env(&[("STOCK_TABLE", "")]).unwrap(),
        client,
    );
    for stock in [off, Arc::new(NoStock) as Arc<dyn Stock>] {
        assert_eq!(stock.reserve(&a_cart).await.unwrap(), Reserved::Untracked);
        assert_eq!(
            stock.release(&a_cart.session).await.unwrap(),
            Released::NothingReserved
        );
        assert_eq!(stock.commit(&a_cart).await.unwrap(), Committed::Untracked);
    }
}

#[tokio::test]
async fn a_cart_with_over_99_tracked_prices_is_refused() {
    let (client, table, stock) = stock().await;
    let mut lines = Vec::new();
    for i in 0..100 {
        let id = format!("price_many_{i}");
        stock.set(None, &price(&id), 1).await.unwrap();
        lines.push((price(&id), 1));
    }
    let big = Cart {
        session: session("cs_test_big"),
        account: None,
        lines,
    };
    let err = stock.reserve(&big).await.unwrap_err();
    assert!(matches!(err, StockError::TooManyPrices), "{err:?}");
    assert_eq!(err.status(), 400);
    assert_eq!(item_count(&client, &table).await, 100, "levels only");
}

// ---------------------------------------------------------------- conflicts

/// DynamoDB's answers for one tracked price at `available` units, cancelling the first
/// `conflicts` transactions with `TransactionConflict` on the level.
struct ContendedDynamoDb {
    table: String,
    available: i64,
    conflicts: usize,
    transactions: Arc<AtomicUsize>,
}

impl Respond for ContendedDynamoDb {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let target = request
            .headers
            .get("x-amz-target")
            .and_then(|t| t.to_str().ok())
            .unwrap_or_default();
        let body: Value = serde_json::from_slice(&request.body).unwrap_or_default();
        match target {
            "DynamoDB_20120810.BatchGetItem" => {
                let keys = &body["RequestItems"][&self.table]["Keys"];
                assert_eq!(
                    body["RequestItems"][&self.table]["ConsistentRead"], true,
                    "levels are read strongly consistent"
                );
                let items: Vec<Value> = keys
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|k| json!({"pk": k["pk"], "available": {"N": self.available.to_string()}}))
                    .collect();
                ResponseTemplate::new(200).set_body_json(
                    json!({"Responses": {&self.table: items}, "UnprocessedKeys": {}}),
                )
            }
            "DynamoDB_20120810.TransactWriteItems" => {
                let n = self.transactions.fetch_add(1, Ordering::SeqCst);
                if n < self.conflicts {
                    let items = body["TransactItems"].as_array().unwrap().len();
                    let mut reasons = vec![json!({"Code": "None"}); items];
                    reasons[items - 1] = json!({"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"});
                    ResponseTemplate::new(400).set_body_json(json!({
                        "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
                        "Message": "Transaction cancelled, please refer cancellation reasons for specific reasons [None, TransactionConflict]",
                        "CancellationReasons": reasons,
                    }))
                } else {
                    ResponseTemplate::new(200).set_body_json(json!({}))
                }
            }
            other => panic!("unexpected DynamoDB call {other}"),
        }
    }
}

async fn contended(conflicts: usize) -> (MockServer, Arc<AtomicUsize>, StockTable) {
    let server = MockServer::start().await;
    let transactions = Arc::new(AtomicUsize::new(0));
    let table = unique_table("stock-contended");
    Mock::given(method("POST"))
        .and(header("content-type", "application/x-amz-json-1.0"))
        .respond_with(ContendedDynamoDb {
            table: table.to_string(),
            available: 5,
            conflicts,
            transactions: transactions.clone(),
        })
        .mount(&server)
        .await;
    let client = dynamodb().await;
    let fake = DynamoDb::from_conf(
        client
            .config()
            .to_builder()
            .endpoint_url(server.uri())
            .build(),
    );
    (server, transactions, StockTable::new(table, fake))
}

#[tokio::test]
async fn a_transaction_cancelled_for_a_conflict_is_tried_again_not_refused() {
    let (_server, transactions, stock) = contended(3).await;

    let outcome = stock
        .reserve(&cart("cs_test_contended", &[("price_poster", 1)]))
        .await
        .unwrap();

    assert_eq!(outcome, Reserved::Taken);
    assert_eq!(
        transactions.load(Ordering::SeqCst),
        4,
        "3 conflicts, then in"
    );
}

#[tokio::test]
async fn conflicts_that_never_end_are_a_5xx_to_retry_never_out_of_stock() {
    let (_server, transactions, stock) = contended(usize::MAX).await;

    let err = stock
        .reserve(&cart("cs_test_jammed", &[("price_poster", 1)]))
        .await
        .unwrap_err();

    assert!(matches!(err, StockError::Store(_)), "{err:?}");
    assert_eq!(err.status(), 503);
    let tries = transactions.load(Ordering::SeqCst);
    assert!((2..=10).contains(&tries), "a few tries: {tries}");
}

/// Stripe's page lets a customer raise an adjustable quantity or add an optional item after
/// the reservation: the sale takes what was paid for, the difference with no floor, and says
/// which prices went below zero.
#[tokio::test]
async fn a_sale_takes_what_was_paid_for_not_only_what_was_reserved() {
    let (_client, _table, stock) = stock().await;
    stock.set(None, &price("price_poster"), 3).await.unwrap();
    stock.set(None, &price("price_mug"), 1).await.unwrap();
    let reserved = cart("cs_test_adjusted", &[("price_poster", 1)]);
    assert_eq!(stock.reserve(&reserved).await.unwrap(), Reserved::Taken);
    assert_eq!(level(&stock, "price_poster").await, Some(2));

    // Paid: 4 posters (raised on the page) and the optional mug, 2 of them.
    let paid = cart("cs_test_adjusted", &[("price_poster", 4), ("price_mug", 2)]);
    assert_eq!(
        stock.commit(&paid).await.unwrap(),
        Committed::Committed {
            oversold: vec![price("price_mug"), price("price_poster")]
        }
    );
    assert_eq!(level(&stock, "price_poster").await, Some(-1));
    assert_eq!(level(&stock, "price_mug").await, Some(-1));
    assert_eq!(
        stock.commit(&paid).await.unwrap(),
        Committed::AlreadyCommitted
    );
    assert_eq!(level(&stock, "price_poster").await, Some(-1), "taken once");

    // Lowered on the page: the units not paid for come back at the sale.
    stock.set(None, &price("price_poster"), 5).await.unwrap();
    let lowered = cart("cs_test_lowered", &[("price_poster", 3)]);
    stock.reserve(&lowered).await.unwrap();
    let paid = cart("cs_test_lowered", &[("price_poster", 1)]);
    assert_eq!(
        stock.commit(&paid).await.unwrap(),
        Committed::Committed { oversold: vec![] }
    );
    assert_eq!(level(&stock, "price_poster").await, Some(4));
}
