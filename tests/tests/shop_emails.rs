//! The emails of a shop document's shops: a shipped, taxed order's confirmation says where it
//! goes and what it cost, and every email of a connected account's order or session comes
//! from that account's profile (or the platform's, when the account has none). Through the
//! real fulfillment and recovery handlers, built from their configuration as the functions
//! build them, against moto (DynamoDB, SES v2) and a fake Stripe at the HTTP boundary.

#![recursion_limit = "256"]

use checkout_core::{
    access::{AccessConfig, AccessTable},
    config::TableName,
    fulfillment::{ConfirmationConfig, ConfirmationEmail, FulfillmentApp, FulfillmentConfig},
    lambda::StreamAndHttp,
    mail::{EmailAddress, SesMailer},
    recovery::{Recovery, RecoveryConfig},
    store::{DynamoDb, FulfillmentState, OrderAmount, OrderField, OrderRecord, OrderStore, tables},
};
use integration_tests::*;
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

const OWN_SHOP: &str = "acct_1Comptoir";
const BARE_SHOP: &str = "acct_1NoProfile";
const COMPTOIR_ADDRESS: &str = "Le Comptoir, 1 rue de la Paix, 75002 Paris";
const PLATFORM_ADDRESS: &str = "Platform Inc., 1 Main St, Springfield";
const CONFIGURED_ADDRESS: &str = "Demo Shop, 1 rue de Rivoli, 75001 Paris";

struct Harness {
    stripe: MockServer,
    dynamodb: DynamoDb,
    orders: TableName,
    sessions: TableName,
    fulfillment: FulfillmentApp<ConfirmationEmail<SesMailer>, AccessTable>,
    recovery: Recovery<SesMailer>,
    buyer: EmailAddress,
    /// The senders: the configured one, the platform's profile, Le Comptoir's.
    configured: EmailAddress,
    platform: EmailAddress,
    comptoir: EmailAddress,
}

impl Harness {
    /// Both consumers, configured as their functions are (`from_env`), with a shop document
    /// whose platform and `OWN_SHOP` have a profile and `BARE_SHOP` has none.
    async fn new() -> Self {
        let dynamodb = dynamodb().await;
        let ses = ses().await;
        // SES sends only from verified identities, and so does moto: each profile's too.
        let configured = verified_sender(&ses).await;
        let platform = verified_sender(&ses).await;
        let comptoir = verified_sender(&ses).await;
        let document = json!({
            "profile": {"name": "Platform", "email_from": platform.as_str(),
                        "postal_address": PLATFORM_ADDRESS, "url": "https://platform.example"},
            "accounts": {
                OWN_SHOP: {"profile": {"name": "Le Comptoir", "email_from": comptoir.as_str(),
                                       "postal_address": COMPTOIR_ADDRESS, "url": "https://comptoir.example"}},
                BARE_SHOP: {}
            }
        })
        .to_string();
        let stripe = MockServer::start().await;
        let orders = orders_table(&dynamodb).await;
        let sessions = sessions_table(&dynamodb).await;
        let events = events_table(&dynamodb).await;
        let access = access_table(&dynamodb).await;
        let recovery_table = unique_table("recovery");
        tables::ensure(&dynamodb, recovery_table.as_str(), &tables::RECOVERY)
            .await
            .unwrap();
        let api_base = stripe.uri();
        let env = [
            ("STRIPE_SECRET_KEY", "sk_test_fake"),
            ("STRIPE_API_BASE", api_base.as_str()),
            ("STRIPE_MAX_RETRIES", "0"),
            ("ORDERS_TABLE", orders.as_str()),
            ("EVENTS_TABLE", events.as_str()),
            ("SESSIONS_TABLE", sessions.as_str()),
            ("ACCESS_TABLE", access.as_str()),
            ("RECOVERY_TABLE", recovery_table.as_str()),
            ("MAIL_FROM", configured.as_str()),
            ("MERCHANT_NAME", "Demo Shop"),
            ("MERCHANT_POSTAL_ADDRESS", CONFIGURED_ADDRESS),
            ("MERCHANT_SHOP_URL", "https://shop.example"),
            (
                "UNSUBSCRIBE_SECRET",
                "test-unsubscribe-secret-of-at-least-32-chars",
            ),
            ("PUBLIC_BASE_URL", "https://api.shop.example"),
            ("SHOP_POLICY", document.as_str()),
        ];
        let confirmation = ConfirmationConfig::from_env(&env).expect("confirmation config");
        let mailer = confirmation
            .mail
            .clone()
            .map(|mail| SesMailer::new(mail, ses.clone()));
        let fulfillment = FulfillmentApp::new(
            FulfillmentConfig::from_env(&env).expect("fulfillment config"),
            dynamodb.clone(),
            ConfirmationEmail::new(confirmation, mailer),
            AccessTable::new(AccessConfig::from_env(&env).unwrap(), dynamodb.clone()),
        );
        let recovery_config = RecoveryConfig::from_env(&env).expect("recovery config");
        let recovery_mailer = SesMailer::new(recovery_config.mail.clone(), ses);
        let recovery = Recovery::new(recovery_config, dynamodb.clone(), recovery_mailer);
        Self {
            stripe,
            dynamodb,
            orders,
            sessions,
            fulfillment,
            recovery,
            buyer: unique_recipient("buyer"),
            configured,
            platform,
            comptoir,
        }
    }

    /// A completed session for 30.00 of goods shipped to Paris: 4.90 shipping before tax,
    /// 6.98 VAT on both, 41.88 in all, a gift note and the terms accepted. Retrieved as the
    /// bundle asks for it (line items, `shipping_cost.shipping_rate` and
    /// `total_details.breakdown` expanded), in the basil version's shape.
    fn shipped_session(&self, id: &str) -> Value {
        json!({
            "id": id, "object": "checkout.session", "mode": "payment", "status": "complete",
            "payment_status": "paid", "expires_at": unix_now() + 3600, "currency": "eur",
            "amount_subtotal": 3000, "amount_total": 4188, "metadata": {}, "payment_intent": "pi_shipped",
            "customer_details": {"email": self.buyer.as_str(), "name": "Jenny Rosen", "phone": "+33612345678",
                "address": {"line1": "1 rue de la Paix", "line2": null, "postal_code": "75002", "city": "Paris", "state": null, "country": "FR"},
                "tax_ids": [{"type": "eu_vat", "value": "FR12345678901"}], "tax_exempt": "none"},
            "collected_information": {"shipping_details": {"name": "Jenny Rosen",
                "address": {"line1": "1 rue de la Paix", "line2": "Bât. B", "postal_code": "75002", "city": "Paris", "state": null, "country": "FR"}}},
            "shipping_cost": {"amount_subtotal": 490, "amount_tax": 98, "amount_total": 588,
                "shipping_rate": {"id": "shr_standard", "object": "shipping_rate", "display_name": "Standard shipping",
                                  "fixed_amount": {"amount": 490, "currency": "eur"}}},
            "total_details": {"amount_discount": 0, "amount_shipping": 490, "amount_tax": 698,
                "breakdown": {"discounts": [], "taxes": [{"amount": 698, "taxable_amount": 3490,
                    "rate": {"id": "txr_vat", "object": "tax_rate", "display_name": "VAT", "percentage": 20.0, "jurisdiction": "FR"}}]}},
            "custom_fields": [{"key": "giftnote", "label": {"type": "custom", "custom": "Gift note"}, "type": "text",
                               "optional": true, "text": {"value": "Happy birthday", "maximum_length": 120, "minimum_length": null}}],
            "consent": {"promotions": "opt_in", "terms_of_service": "accepted"},
            "line_items": {"object": "list", "has_more": false, "data": [
                {"id": "li_mug", "object": "item", "description": "Mug", "quantity": 2, "amount_subtotal": 3000,
                 "amount_total": 3600, "amount_tax": 600, "amount_discount": 0, "currency": "eur",
                 "price": {"id": "price_mug", "object": "price", "currency": "eur", "unit_amount": 1500, "product": "prod_mug"}}
            ]}
        })
    }

    /// Stripe answers `session` for its id, on `account` when given.
    async fn stripe_answers(&self, session: &Value, account: Option<&str>) {
        let id = session["id"].as_str().unwrap();
        let mut mock = Mock::given(method("GET")).and(path(format!("/v1/checkout/sessions/{id}")));
        if let Some(account) = account {
            mock = mock.and(header("stripe-account", account));
        }
        mock.respond_with(ResponseTemplate::new(200).set_body_json(session))
            .mount(&self.stripe)
            .await;
    }

    /// `session` completed (on `account`), through the fulfillment stream; its order record.
    async fn fulfil(&self, session: &Value, account: Option<&str>) -> OrderRecord {
        let id = session["id"].as_str().unwrap();
        self.stripe_answers(session, account).await;
        if account.is_some() {
            created_here(&self.dynamodb, &self.sessions, id, account).await;
        }
        let event = stored_event(
            &format!("evt_{id}"),
            "checkout.session.completed",
            json!({"id": id, "object": "checkout.session"}),
            account,
        );
        let response = self.fulfillment.stream(stream_batch(&[event]), None).await;
        assert!(response.batch_item_failures.is_empty(), "{response:?}");
        OrderStore::new(self.orders.clone(), self.dynamodb.clone())
            .get(id)
            .await
            .unwrap()
            .expect("an order")
    }

    /// The one email the buyer got, its lines ending as the templates end them (MIME's
    /// are CRLF).
    async fn only_email(&self) -> ParsedEmail {
        let sent = outbox(&self.buyer).await;
        assert_eq!(sent.len(), 1, "one email");
        let mut email = sent[0].parsed();
        email.text = email.text.replace("\r\n", "\n");
        email.html = email.html.replace("\r\n", "\n");
        email
    }
}

fn from_header(email: &ParsedEmail) -> String {
    email
        .headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("from"))
        .map(|(_, value)| value.clone())
        .expect("a From header")
}

/// minijinja escapes `/` in HTML; the text reads back as written.
fn unescaped(html: &str) -> String {
    html.replace("&#x2f;", "/").replace("&amp;", "&")
}

#[tokio::test]
async fn a_shipped_taxed_order_is_recorded_and_confirmed_with_its_address_rate_tax_and_total() {
    let h = Harness::new().await;
    let order = h.fulfil(&h.shipped_session("cs_test_shipped"), None).await;

    assert!(
        matches!(order.state, FulfillmentState::Fulfilled { .. }),
        "{:?}",
        order.state
    );
    let details = order.details.expect("details");
    let shipping = details.shipping.expect("shipping recorded");
    assert_eq!(shipping.name.as_deref(), Some("Jenny Rosen"));
    assert_eq!(
        shipping.address,
        ["1 rue de la Paix", "Bât. B", "75002 Paris", "FR"]
    );
    assert_eq!(
        (shipping.rate.as_deref(), shipping.rate_name.as_deref()),
        (Some("shr_standard"), Some("Standard shipping"))
    );
    assert_eq!(
        (details.totals.amount_tax, details.totals.amount_shipping),
        (698, 490)
    );
    assert_eq!(
        details.totals.taxes,
        [OrderAmount {
            label: "VAT 20%".into(),
            amount: 698
        }]
    );
    assert_eq!(
        details.custom_fields,
        [OrderField {
            key: "giftnote".into(),
            label: Some("Gift note".into()),
            value: Some("Happy birthday".into())
        }]
    );
    assert!(details.terms_accepted);
    assert_eq!(details.phone.as_deref(), Some("+33612345678"));

    let email = h.only_email().await;
    for expected in [
        "Subtotal: 30.00 EUR",
        "Shipping (Standard shipping): 4.90 EUR",
        "VAT 20%: 6.98 EUR",
        "Total: 41.88 EUR",
        "Shipping to:\nJenny Rosen\n1 rue de la Paix\nBât. B\n75002 Paris\nFR\n+33612345678",
        "EU VAT: FR12345678901",
        "Gift note: Happy birthday",
        "Terms of service accepted",
    ] {
        assert!(
            email.text.contains(expected),
            "{expected:?} not in {:?}",
            email.text
        );
    }
    let html = unescaped(&email.html);
    for expected in [
        "Shipping: Standard shipping</td><td style=\"text-align: right;\">4.90 EUR",
        "VAT 20%</td><td style=\"text-align: right;\">6.98 EUR",
        "<strong>41.88 EUR</strong>",
        "Jenny Rosen<br>1 rue de la Paix<br>Bât. B<br>75002 Paris<br>FR<br>+33612345678",
        "Gift note: Happy birthday",
        "Terms of service accepted",
    ] {
        assert!(html.contains(expected), "{expected:?} not in {html}");
    }
    // No account: the platform's profile, which the document has.
    assert!(from_header(&email).contains(h.platform.as_str()));
    assert!(email.text.ends_with(PLATFORM_ADDRESS), "{}", email.text);
}

#[tokio::test]
async fn a_connected_accounts_order_is_confirmed_by_its_own_shop() {
    let h = Harness::new().await;
    let order = h
        .fulfil(&h.shipped_session("cs_test_comptoir"), Some(OWN_SHOP))
        .await;
    assert_eq!(order.account.unwrap().as_str(), OWN_SHOP);

    let email = h.only_email().await;
    assert_eq!(
        from_header(&email),
        format!("\"Le Comptoir\" <{}>", h.comptoir.as_str())
    );
    assert_eq!(email.subject, "Le Comptoir: your order is confirmed");
    assert!(email.text.contains("Le Comptoir has received your payment"));
    assert!(
        email.text.ends_with(&format!(
            "Le Comptoir: https://comptoir.example\n{COMPTOIR_ADDRESS}"
        )),
        "{}",
        email.text
    );
    let html = unescaped(&email.html);
    assert!(html.contains(&format!("{COMPTOIR_ADDRESS}</p>")), "{html}");
    assert!(html.contains("href=\"https://comptoir.example\""), "{html}");
    for other in ["Platform", "Demo Shop"] {
        assert!(
            !email.text.contains(other) && !html.contains(other),
            "{other}"
        );
    }
}

#[tokio::test]
async fn an_account_without_a_profile_is_confirmed_by_the_platform() {
    let h = Harness::new().await;
    h.fulfil(&h.shipped_session("cs_test_bare"), Some(BARE_SHOP))
        .await;

    let email = h.only_email().await;
    assert_eq!(
        from_header(&email),
        format!("\"Platform\" <{}>", h.platform.as_str())
    );
    assert_eq!(email.subject, "Platform: your order is confirmed");
    assert!(email.text.ends_with(PLATFORM_ADDRESS), "{}", email.text);
    assert!(!from_header(&email).contains(h.configured.as_str()));
}

/// An expired session of `OWN_SHOP`'s, consenting, with a live recovery URL.
fn expired(h: &Harness, id: &str) -> Value {
    let now = unix_now();
    json!({
        "id": id, "object": "checkout.session", "mode": "payment", "status": "expired", "payment_status": "unpaid",
        "created": now - 7200, "expires_at": now - 60, "amount_total": 1500, "currency": "eur", "locale": "auto",
        "customer_details": {"email": h.buyer.as_str(), "name": "Jenny"},
        "consent_collection": {"promotions": "auto"}, "consent": {"promotions": "opt_in"},
        "after_expiration": {"recovery": {"enabled": true, "url": format!("https://buy.stripe.com/r/live_{id}"),
                                          "expires_at": now + 30 * 86_400, "allow_promotion_codes": false}},
        "metadata": {}
    })
}

#[tokio::test]
async fn a_connected_accounts_recovery_email_comes_from_its_own_shop() {
    let h = Harness::new().await;
    Mock::given(method("GET"))
        .and(path_regex(r"^/v1/checkout/sessions/cs_[A-Za-z0-9_]+/line_items$"))
        .and(header("stripe-account", OWN_SHOP))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"object": "list", "has_more": false, "data": [
            {"id": "li_mug", "object": "item", "description": "Mug", "quantity": 1, "amount_subtotal": 1500, "amount_total": 1500, "currency": "eur"}
        ]})))
        .mount(&h.stripe)
        .await;
    created_here(&h.dynamodb, &h.sessions, "cs_test_left", Some(OWN_SHOP)).await;
    let record = stored_event(
        "evt_left",
        "checkout.session.expired",
        expired(&h, "cs_test_left"),
        Some(OWN_SHOP),
    );
    let response = h.recovery.stream(stream_batch(&[record]), None).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");

    let email = h.only_email().await;
    assert_eq!(
        from_header(&email),
        format!("\"Le Comptoir\" <{}>", h.comptoir.as_str())
    );
    assert_eq!(
        email.subject,
        "You left something in your cart at Le Comptoir"
    );
    assert!(email.text.contains("Your cart at Le Comptoir is waiting"));
    assert!(
        email.text.trim_end().ends_with(COMPTOIR_ADDRESS),
        "{}",
        email.text
    );
    let html = unescaped(&email.html);
    let footer = html.rfind(COMPTOIR_ADDRESS).expect("the postal address");
    assert!(footer > html.find("</h1>").unwrap(), "in the footer");
    assert!(!html.contains(CONFIGURED_ADDRESS) && !html.contains(PLATFORM_ADDRESS));
}

#[tokio::test]
async fn a_connected_accounts_failed_payment_notice_links_to_its_own_shop() {
    let h = Harness::new().await;
    created_here(&h.dynamodb, &h.sessions, "cs_test_declined", Some(OWN_SHOP)).await;
    let mut session = expired(&h, "cs_test_declined");
    session["consent"] = Value::Null; // transactional: no consent needed
    let record = stored_event(
        "evt_declined",
        "checkout.session.async_payment_failed",
        session,
        Some(OWN_SHOP),
    );
    let response = h.recovery.stream(stream_batch(&[record]), None).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");

    let email = h.only_email().await;
    assert!(from_header(&email).contains(h.comptoir.as_str()));
    assert_eq!(
        email.subject,
        "Le Comptoir: your payment did not go through"
    );
    assert!(
        email.text.contains("https://comptoir.example"),
        "{}",
        email.text
    );
    assert!(!email.text.contains("https://shop.example"));
    assert!(email.text.trim_end().ends_with(COMPTOIR_ADDRESS));
}
