//! Every HTML email renders well in a narrow client: a viewport meta, one column at most
//! 600 px wide with no fixed width, the sender's postal address in the footer, the
//! unsubscribe link in marketing email and the order reference in the confirmation.
//!
//! The contexts are those the bundle renders with (`fulfillment/confirmation.rs`,
//! `recovery/{abandoned,payment_failed,dunning,payment_notices}.rs`), as JSON, from one
//! sender (whose name, postal address and shop URL every template gets). The last tests
//! break the checks on purpose, so each of them is known to be able to fail.

use checkout_core::mail::{Email, Sender, Templates};
use serde_json::{Value, json};

const MERCHANT: &str = "Demo Shop";
const POSTAL_ADDRESS: &str = "Demo Shop, 1 rue de Rivoli, 75001 Paris, France";
const ORDER_ID: &str = "cs_test_a1B2c3D4e5F6g7H8i9J0kLmNoPqRsTuVwXyZ0123456789abcdefghij";
const UNSUBSCRIBE_URL: &str = "https://api.shop.example/recovery/unsubscribe?token=0123abcd.ef45";
const VIEWPORT: &str = r#"<meta name="viewport" content="width=device-width, initial-scale=1">"#;
/// The widest a width may be, in CSS pixels.
const MAX_WIDTH_PX: f64 = 600.0;

const SHOP_URL: &str = "https://shop.example/";

fn sender() -> Sender {
    Sender {
        from_address: "orders@shop.example".parse().unwrap(),
        from_name: MERCHANT.into(),
        shop_name: MERCHANT.into(),
        postal_address: Some(POSTAL_ADDRESS.into()),
        shop_url: Some(SHOP_URL.into()),
    }
}

/// A shipped order's, with every part a physical order adds, so those fit too.
fn confirmation() -> Value {
    json!({
        "order": {
            "order_id": ORDER_ID,
            "customer_name": "Jenny Rosen",
            "amount_total_display": "€49.88",
            "line_items": [
                {"description": "Ceramic mug with a very long product name that has to wrap somewhere", "quantity": 2, "amount_total_display": "€30.00", "optional": false},
                {"description": "Tea", "quantity": 1, "amount_total_display": "€12.00", "optional": true},
            ],
            "amount_subtotal_display": "€42.00",
            "shipping": {"name": "Jenny Rosen", "address": ["1 rue de la Paix", "Bâtiment B, escalier 3, 4e étage, porte gauche", "75002 Paris", "FR"],
                         "rate_name": "Standard shipping", "amount_display": "€4.90"},
            "phone": "+33612345678",
            "taxes": [{"label": "VAT 20%", "amount_display": "€9.38"}],
            "tax_included": false,
            "discounts": [{"label": "WELCOME10", "amount_display": "-€6.40"}],
            "tax_ids": [{"label": "EU VAT", "value": "FR12345678901"}],
            "custom_fields": [{"label": "Gift note", "value": "A long gift note that goes on and on and has to wrap in a narrow client"}],
            "terms_accepted": true,
        },
    })
}

fn recovery() -> Value {
    json!({
        "customer_name": "Sam",
        "recovery_url": "https://checkout.stripe.com/c/pay/cs_test_recovered#fragment",
        "unsubscribe_url": UNSUBSCRIBE_URL,
        "promotion_code": "COMEBACK-7Q2X",
        "items": [{"description": "Tea box", "quantity": 1, "amount_display": "€12.00"}],
    })
}

fn payment_failed() -> Value {
    json!({})
}

fn invoice() -> Value {
    json!({
        "pay_url": "https://invoice.stripe.com/i/acct_123/test_456",
        "amount_display": "€9.00",
        "attempt": 2,
        "next_attempt": "2026-12-09",
    })
}

fn payment() -> Value {
    json!({
        "retry_url": "https://shop.example/returning?retry=pi_123",
        "amount_display": "€42.00",
        "description": "Mug",
    })
}

/// Every HTML email of the bundle, with a context it is rendered with.
fn every_email() -> Vec<(String, Value)> {
    let mut all = vec![("confirmation".to_string(), confirmation())];
    for language in ["en", "fr"] {
        for (kind, context) in [
            ("recovery", recovery()),
            ("payment_failed", payment_failed()),
            ("renewal_failed", invoice()),
            ("renewal_action_required", invoice()),
            ("payment_pending", payment()),
            ("payment_retry", payment()),
        ] {
            all.push((format!("{kind}.{language}"), context));
        }
    }
    all
}

fn render(templates: &Templates, kind: &str, context: &Value) -> Email {
    templates
        .render(
            kind,
            &sender(),
            "jenny@example.com".parse().unwrap(),
            context,
        )
        .unwrap_or_else(|e| panic!("{kind}: {e:#}"))
}

fn defaults() -> Templates {
    Templates::from_env(&[("UNUSED", "")]).expect("the default templates compile")
}

/// minijinja escapes `/` in HTML; the URLs read back as written.
fn unescaped(html: &str) -> String {
    html.replace("&#x2f;", "/").replace("&amp;", "&")
}

/// What in `html` is wider than a narrow client: a `width` attribute (other than the
/// viewport's `width=device-width`), a CSS width (`width`, `max-width`, `min-width`) above
/// 600 px, or one in a unit that does not shrink (`pt`, `em`, …).
fn width_problems(html: &str) -> Vec<String> {
    let lower = html.to_ascii_lowercase();
    let mut problems = Vec::new();
    for (at, _) in lower.match_indices("width") {
        let rest = lower[at + "width".len()..].trim_start();
        let context = || {
            let start = lower.floor_char_boundary(at.saturating_sub(20));
            let end = lower.ceil_char_boundary((at + 40).min(lower.len()));
            lower[start..end].to_string()
        };
        if let Some(value) = rest.strip_prefix('=') {
            if !value.trim_start().starts_with("device-width") {
                problems.push(format!("a width attribute: …{}…", context()));
            }
        } else if let Some(value) = rest.strip_prefix(':') {
            let value = value.trim_start();
            let number: String = value
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.')
                .collect();
            let unit: String = value[number.len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphabetic() || *c == '%')
                .collect();
            let Ok(amount) = number.parse::<f64>() else {
                continue; // auto, inherit, …
            };
            let fits = match unit.as_str() {
                "px" | "" => amount <= MAX_WIDTH_PX,
                "%" => amount <= 100.0,
                _ => false,
            };
            if !fits {
                problems.push(format!("a fixed width: …{}…", context()));
            }
        }
    }
    problems
}

/// What a narrow client needs of every email, as a list of what is missing.
fn layout_problems(kind: &str, html: &str) -> Vec<String> {
    let mut problems = width_problems(html);
    if !html.contains(VIEWPORT) {
        problems.push(format!("no viewport meta ({VIEWPORT})"));
    }
    if !html.to_ascii_lowercase().contains("max-width: 600px") {
        problems.push("no max-width: 600px container".into());
    }
    let html = unescaped(html);
    if kind == "confirmation" && !html.contains(&format!("Order reference: {ORDER_ID}")) {
        problems.push(format!("no order reference ({ORDER_ID})"));
    }
    // The footer: the postal address, after the message itself (the confirmation's too,
    // when its sender has one, as a shop profile does).
    match (html.find("</h1>"), html.rfind(POSTAL_ADDRESS)) {
        (Some(heading), Some(address)) if address > heading => {}
        _ => problems.push(format!("no postal address footer ({POSTAL_ADDRESS})")),
    }
    if kind.starts_with("recovery.") && !html.contains(&format!("href=\"{UNSUBSCRIBE_URL}\"")) {
        problems.push(format!("no unsubscribe link ({UNSUBSCRIBE_URL})"));
    }
    problems
}

#[test]
fn every_html_email_fits_a_narrow_client() {
    let templates = defaults();
    let emails = every_email();
    assert_eq!(
        emails.len(),
        13,
        "confirmation and six kinds in two languages"
    );
    let mut failures = Vec::new();
    for (kind, context) in &emails {
        let email = render(&templates, kind, context);
        for problem in layout_problems(kind, &email.html) {
            failures.push(format!("{kind}.html: {problem}"));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn the_checks_catch_widths_that_do_not_fit() {
    for wide in [
        r#"<table width="640">"#,
        r#"<img src="x.png" WIDTH='700'>"#,
        "<td width=601>",
        r#"<div style="width: 640px">"#,
        r#"<div style="max-width:601px">"#,
        r#"<div style="min-width: 700px">"#,
        r#"<div style="width: 40em">"#,
        r#"<div style="width: 120%">"#,
    ] {
        assert!(!width_problems(wide).is_empty(), "{wide}");
    }
    for fits in [
        VIEWPORT,
        r#"<table style="width: 100%; max-width: 600px;">"#,
        r#"<div style="width:auto; max-width: 599.5px">"#,
    ] {
        assert_eq!(width_problems(fits), Vec::<String>::new(), "{fits}");
    }
}

#[test]
fn the_checks_catch_a_missing_viewport_address_unsubscribe_link_and_order_reference() {
    let templates = defaults();
    let recovery = render(&templates, "recovery.en", &recovery()).html;
    let confirmation = render(&templates, "confirmation", &confirmation()).html;
    let broken = |html: &str, from: &str, to: &str| {
        assert!(html.contains(from), "{from} is in the email");
        html.replace(from, to)
    };
    let cases = [
        (
            "recovery.en",
            broken(&recovery, VIEWPORT, ""),
            "no viewport meta",
        ),
        (
            "recovery.en",
            broken(&recovery, "max-width: 600px", "max-width: 100%"),
            "no max-width",
        ),
        (
            "recovery.en",
            broken(&recovery, POSTAL_ADDRESS, ""),
            "no postal address",
        ),
        (
            "recovery.en",
            broken(&recovery, "unsubscribe?token", "unsubscribe-not?token"),
            "no unsubscribe link",
        ),
        (
            "confirmation",
            broken(&confirmation, ORDER_ID, "cs_test_other"),
            "no order reference",
        ),
        (
            "confirmation",
            broken(&confirmation, "max-width: 600px", "width: 640px"),
            "a fixed width",
        ),
        (
            "confirmation",
            broken(&confirmation, POSTAL_ADDRESS, ""),
            "no postal address",
        ),
    ];
    for (kind, html, expected) in cases {
        let problems = layout_problems(kind, &html);
        assert!(
            problems.iter().any(|p| p.contains(expected)),
            "{kind}: expected {expected:?}, got {problems:?}"
        );
    }
}

/// A merchant's own template (`MAIL_TEMPLATES_DIR`) with a fixed width is caught the same
/// way: the checks read what is sent, not the defaults' source.
#[test]
fn a_template_with_a_fixed_width_fails_the_check() {
    let dir = std::env::temp_dir().join(format!(
        "email-layout-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    // Every HTML email extends the one layout: a merchant's layout with a fixed width.
    let default = include_str!("../templates/email_layout.html");
    let fixed = default.replace("max-width: 600px", "width: 640px");
    assert_ne!(fixed, default);
    std::fs::write(dir.join("email_layout.html"), fixed).unwrap();
    let templates = Templates::from_env(&[("MAIL_TEMPLATES_DIR", dir.to_str().unwrap())]).unwrap();
    let email = render(&templates, "payment_failed.en", &payment_failed());
    std::fs::remove_dir_all(&dir).ok();
    let problems = layout_problems("payment_failed.en", &email.html);
    assert!(
        problems.iter().any(|p| p.contains("a fixed width"))
            && problems.iter().any(|p| p.contains("no max-width")),
        "{problems:?}"
    );
}
