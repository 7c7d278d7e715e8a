//! The Stripe simulator's Checkout options, as Stripe answers them at the pinned version: the
//! parameters the shop policy sends (and refusals of the rest), what paying collects
//! (shipping, rate, tax, custom fields, terms), automatic tax, expiring a session, and
//! `ui_mode=custom`; each session object with the keys of Stripe's fixtures.

use checkout_core::stripe::Form;
use integration_tests::simulator::*;
use integration_tests::unix_now;
use serde_json::Value;

/// A raw API call: the status and the JSON answered (POST with `body`, GET without).
async fn api_call(
    h: &Harness,
    method: &str,
    path_and_query: &str,
    body: &[(String, String)],
    headers: &[(&str, &str)],
) -> (u16, Value) {
    let encoded = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(body)
        .finish();
    let mut request = http::Request::builder()
        .method(method)
        .uri(format!("{}{path_and_query}", h.url))
        .header("authorization", format!("Bearer {KEY}"))
        .header("content-type", "application/x-www-form-urlencoded");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(http_body_util::Full::new(bytes::Bytes::from(encoded)))
        .unwrap();
    let (status, _, body) = call(request).await;
    (status.as_u16(), serde_json::from_slice(&body).unwrap())
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect()
}

/// A hosted payment session for two mugs (15.00 each) with every option the shop policy may
/// send, in Stripe's form encoding as the bundle's `Form::push_json` writes it.
fn options_form() -> Vec<(String, String)> {
    let mut form = pairs(&[
        ("line_items[0][price]", "price_mug"),
        ("line_items[0][quantity]", "2"),
        ("line_items[0][adjustable_quantity][enabled]", "true"),
        ("line_items[0][adjustable_quantity][maximum]", "10"),
        ("line_items[0][adjustable_quantity][minimum]", "1"),
        ("mode", "payment"),
        ("ui_mode", "hosted"),
        (
            "success_url",
            "http://shop.test/thanks?session_id={CHECKOUT_SESSION_ID}",
        ),
        ("cancel_url", "http://shop.test/"),
        ("shipping_address_collection[allowed_countries][0]", "FR"),
        ("shipping_address_collection[allowed_countries][1]", "DE"),
        ("shipping_address_collection[allowed_countries][2]", "BE"),
        ("shipping_options[0][shipping_rate]", "shr_standard"),
        ("shipping_options[1][shipping_rate]", "shr_express"),
        ("phone_number_collection[enabled]", "true"),
        ("billing_address_collection", "required"),
        ("tax_id_collection[enabled]", "true"),
        ("automatic_tax[enabled]", "true"),
        (
            "custom_text[submit][message]",
            "We ship within two working days.",
        ),
        ("custom_text[shipping_address][message]", "No PO boxes."),
        (
            "custom_text[terms_of_service_acceptance][message]",
            "I accept the terms of sale.",
        ),
        ("custom_text[after_submit][message]", "Thank you!"),
        ("custom_fields[0][key]", "giftnote"),
        ("custom_fields[0][label][type]", "custom"),
        ("custom_fields[0][label][custom]", "Gift note"),
        ("custom_fields[0][type]", "text"),
        ("custom_fields[0][optional]", "true"),
        ("custom_fields[0][text][minimum_length]", "2"),
        ("custom_fields[0][text][maximum_length]", "120"),
        ("custom_fields[1][key]", "size"),
        ("custom_fields[1][label][type]", "custom"),
        ("custom_fields[1][label][custom]", "Size"),
        ("custom_fields[1][type]", "dropdown"),
        ("custom_fields[1][dropdown][options][0][label]", "Small"),
        ("custom_fields[1][dropdown][options][0][value]", "s"),
        ("custom_fields[1][dropdown][options][1][label]", "Large"),
        ("custom_fields[1][dropdown][options][1][value]", "l"),
        ("custom_fields[2][key]", "ordernumber"),
        ("custom_fields[2][label][type]", "custom"),
        ("custom_fields[2][label][custom]", "Purchase order"),
        ("custom_fields[2][type]", "numeric"),
        ("custom_fields[2][optional]", "true"),
        ("custom_fields[2][numeric][maximum_length]", "8"),
        ("consent_collection[terms_of_service]", "required"),
        ("invoice_creation[enabled]", "true"),
        ("submit_type", "pay"),
        (
            "saved_payment_method_options[payment_method_save]",
            "enabled",
        ),
        ("payment_intent_data[setup_future_usage]", "on_session"),
        ("optional_items[0][price]", "price_tea"),
        ("optional_items[0][quantity]", "1"),
        ("optional_items[0][adjustable_quantity][enabled]", "true"),
        ("optional_items[0][adjustable_quantity][maximum]", "5"),
    ]);
    form.push(("expires_at".into(), (unix_now() + 3600).to_string()));
    form
}

/// `options_form` with `key` set to `value` (replaced, or added).
fn with(mut form: Vec<(String, String)>, key: &str, value: &str) -> Vec<(String, String)> {
    form.retain(|(k, _)| k != key);
    form.push((key.into(), value.into()));
    form
}

async fn create(h: &Harness, form: &[(String, String)]) -> Value {
    let (status, session) = api_call(h, "POST", "/v1/checkout/sessions", form, &[]).await;
    assert_eq!(status, 200, "{session}");
    session
}

/// The refusal of a create: its status, `param`, `code` and message.
async fn refused(h: &Harness, form: &[(String, String)]) -> (u16, String, String, String) {
    let (status, answer) = api_call(h, "POST", "/v1/checkout/sessions", form, &[]).await;
    let error = &answer["error"];
    let text = |k: &str| error[k].as_str().unwrap_or_default().to_string();
    (status, text("param"), text("code"), text("message"))
}

/// A form post to a page: the status, the `Location` and the page.
async fn post_form(
    h: &Harness,
    page: &str,
    fields: &[(&str, &str)],
) -> (u16, Option<String>, String) {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish();
    let request = http::Request::post(format!("{}{page}", h.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .unwrap();
    let (status, headers, body) = call(request).await;
    let location = headers
        .get("location")
        .map(|l| l.to_str().unwrap().to_string());
    (
        status.as_u16(),
        location,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

/// What a customer in France enters on the hosted page of an `options_form` session.
const PAY_TO_FRANCE: [(&str, &str); 14] = [
    ("action", "pay"),
    ("email", "ada@example.com"),
    ("name", "Ada Lovelace"),
    ("shipping_name", "Ada Lovelace"),
    ("shipping_line1", "1 rue de Rivoli"),
    ("shipping_postal_code", "75001"),
    ("shipping_city", "Paris"),
    ("shipping_country", "FR"),
    ("shipping_rate", "shr_standard"),
    ("phone", "+33 6 12 34 56 78"),
    ("tax_id", "FR 12345678901"),
    ("custom_giftnote", "Happy birthday"),
    ("custom_size", "l"),
    ("tos", "on"),
];

fn fields_but<'a>(
    base: &[(&'a str, &'a str)],
    replace: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    let mut fields: Vec<(&str, &str)> = base
        .iter()
        .filter(|(k, _)| !replace.iter().any(|(r, _)| r == k))
        .copied()
        .collect();
    fields.extend(replace.iter().filter(|(_, v)| !v.is_empty()).copied());
    fields
}

#[tokio::test]
async fn every_checkout_option_round_trips_in_the_session_object() {
    let h = Harness::start().await;
    let created = create(&h, &options_form()).await;
    let id = created["id"].as_str().unwrap();
    let (_, retrieved) =
        api_call(&h, "GET", &format!("/v1/checkout/sessions/{id}"), &[], &[]).await;
    for session in [&created, &retrieved] {
        assert_eq!(
            session["shipping_address_collection"],
            serde_json::json!({"allowed_countries": ["FR", "DE", "BE"]})
        );
        assert_eq!(
            session["shipping_options"],
            serde_json::json!([
                {"shipping_amount": 490, "shipping_rate": "shr_standard"},
                {"shipping_amount": 1200, "shipping_rate": "shr_express"},
            ])
        );
        assert_eq!(
            session["phone_number_collection"],
            serde_json::json!({"enabled": true})
        );
        assert_eq!(session["billing_address_collection"], "required");
        assert_eq!(
            session["tax_id_collection"],
            serde_json::json!({"enabled": true, "required": "never"})
        );
        assert_eq!(session["automatic_tax"]["enabled"], true);
        assert_eq!(
            session["automatic_tax"]["status"],
            "requires_location_inputs"
        );
        assert_eq!(
            session["custom_text"]["submit"]["message"],
            "We ship within two working days."
        );
        assert_eq!(
            session["custom_text"]["shipping_address"]["message"],
            "No PO boxes."
        );
        assert_eq!(
            session["custom_text"]["terms_of_service_acceptance"]["message"],
            "I accept the terms of sale."
        );
        assert_eq!(
            session["custom_text"]["after_submit"]["message"],
            "Thank you!"
        );
        let fields = session["custom_fields"].as_array().unwrap();
        assert_eq!(fields.len(), 3);
        assert_eq!(
            fields[0],
            serde_json::json!({
                "key": "giftnote", "label": {"custom": "Gift note", "type": "custom"},
                "optional": true, "type": "text", "dropdown": null, "numeric": null,
                "text": {"default_value": null, "maximum_length": 120, "minimum_length": 2, "value": null},
            })
        );
        assert_eq!(
            fields[1]["dropdown"]["options"],
            serde_json::json!([{"label": "Small", "value": "s"}, {"label": "Large", "value": "l"}])
        );
        assert_eq!(fields[1]["optional"], false);
        assert_eq!(fields[2]["numeric"]["maximum_length"], 8);
        assert_eq!(
            session["consent_collection"]["terms_of_service"],
            "required"
        );
        assert_eq!(session["invoice_creation"]["enabled"], true);
        assert_eq!(session["submit_type"], "pay");
        assert_eq!(
            session["saved_payment_method_options"]["payment_method_save"],
            "enabled"
        );
        assert_eq!(
            session["optional_items"],
            serde_json::json!([{
                "adjustable_quantity": {"enabled": true, "maximum": 5, "minimum": 0},
                "price": "price_tea", "quantity": 1,
            }])
        );
        // Stripe preselects the first shipping option: it is in the total from the start.
        assert_eq!(session["shipping_cost"]["shipping_rate"], "shr_standard");
        assert_eq!(session["amount_subtotal"], 3000);
        assert_eq!(session["amount_total"], 3490);
        assert_eq!(
            session["total_details"],
            serde_json::json!({"amount_discount": 0, "amount_shipping": 490, "amount_tax": 0})
        );
    }
    // The hosted page asks for all of it.
    let (status, _, page) = {
        let request = http::Request::get(format!("{}/c/pay/{id}", h.url))
            .body(http_body_util::Full::default())
            .unwrap();
        let (status, headers, body) = call(request).await;
        (status, headers, String::from_utf8_lossy(&body).into_owned())
    };
    assert_eq!(status, 200);
    for name in [
        "shipping_name",
        "shipping_line1",
        "shipping_postal_code",
        "shipping_city",
        "shipping_country",
        "shipping_rate",
        "phone",
        "tax_id",
        "custom_giftnote",
        "custom_size",
        "custom_ordernumber",
        "tos",
        "optional_price_tea",
        "optional_quantity_price_tea",
        "quantity_0",
    ] {
        assert!(
            page.contains(&format!("name=\"{name}\"")),
            "the page has {name}: {page}"
        );
    }
    assert!(
        page.contains(r#"value="shr_standard" checked"#),
        "the first rate preselected"
    );
    assert!(page.contains("We ship within two working days."));

    // The PaymentIntent is made for the session as paid; it saves the card as asked.
    let (status, _) = h.act(&id.parse().unwrap(), &PAY_TO_FRANCE).await;
    assert_eq!(status, 303);
    let (_, paid) = api_call(&h, "GET", &format!("/v1/checkout/sessions/{id}"), &[], &[]).await;
    let intent = paid["payment_intent"].as_str().unwrap();
    let (_, intent) = api_call(
        &h,
        "GET",
        &format!("/v1/payment_intents/{intent}"),
        &[],
        &[],
    )
    .await;
    assert_eq!(intent["setup_future_usage"], "on_session");
}

#[tokio::test]
async fn the_bundles_shop_policy_is_taken_as_the_bundle_sends_it() {
    let h = Harness::start().await;
    let path = format!(
        "{}/../examples/shop-policy.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let document: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let policy: checkout_core::shop::CheckoutPolicy =
        serde_json::from_value(document["checkout"].clone()).unwrap();
    for (mode, price) in [("payment", "price_mug"), ("subscription", "price_plan")] {
        let mut form = Form::new();
        form.push("line_items[0][price]", price)
            .push("line_items[0][quantity]", 1)
            .push("mode", mode)
            .push("ui_mode", "hosted")
            .push("success_url", "http://shop.test/thanks");
        let kind = if mode == "payment" {
            checkout_core::shop::SessionKind::Payment
        } else {
            checkout_core::shop::SessionKind::Subscription
        };
        let price_id = price.parse().unwrap();
        policy.push_to(&mut form, kind, &[&price_id]);
        let (status, session) =
            api_call(&h, "POST", "/v1/checkout/sessions", form.pairs(), &[]).await;
        assert_eq!(status, 200, "{mode}: {session}");
    }
}

#[tokio::test]
async fn unknown_parameters_and_options_stripe_refuses_are_refused_with_their_param() {
    let h = Harness::start().await;
    for (key, blamed) in [
        ("color", "color"),
        (
            "shipping_address_collection[allowed_countries][0][x]",
            "shipping_address_collection[allowed_countries][0][x]",
        ),
        (
            "shipping_address_collection[countries][0]",
            "shipping_address_collection[countries]",
        ),
        (
            "custom_fields[0][label][style]",
            "custom_fields[0][label][style]",
        ),
        (
            "line_items[0][price_data][currency]",
            "line_items[0][price_data]",
        ),
        (
            "payment_intent_data[capture_method]",
            "payment_intent_data[capture_method]",
        ),
    ] {
        let (status, param, code, message) = refused(&h, &with(options_form(), key, "x")).await;
        assert_eq!(
            (status, param.as_str(), code.as_str()),
            (400, blamed, "parameter_unknown"),
            "{key}"
        );
        assert_eq!(message, format!("Received unknown parameter: {blamed}"));
    }

    let (status, param, code, message) = refused(
        &h,
        &with(
            options_form(),
            "shipping_options[1][shipping_rate]",
            "shr_nope",
        ),
    )
    .await;
    assert_eq!(
        (status, param.as_str(), code.as_str()),
        (
            400,
            "shipping_options[1][shipping_rate]",
            "resource_missing"
        )
    );
    assert_eq!(message, "No such shipping rate: 'shr_nope'");

    let mut six = options_form();
    for i in 2..6 {
        six.push((
            format!("shipping_options[{i}][shipping_rate]"),
            "shr_standard".into(),
        ));
    }
    let subscription = |form: Vec<(String, String)>| {
        let form = with(form, "line_items[0][price]", "price_plan");
        with(form, "mode", "subscription")
    };
    let mut four_fields = options_form();
    four_fields.extend(pairs(&[
        ("custom_fields[3][key]", "extra"),
        ("custom_fields[3][label][type]", "custom"),
        ("custom_fields[3][label][custom]", "Extra"),
        ("custom_fields[3][type]", "text"),
    ]));
    let mut eleven = options_form();
    for i in 1..11 {
        eleven.push((format!("optional_items[{i}][price]"), "price_poster".into()));
        eleven.push((format!("optional_items[{i}][quantity]"), "1".into()));
    }
    let plain_subscription = subscription(pairs(&[
        ("line_items[0][price]", "price_plan"),
        ("success_url", "http://shop.test/thanks"),
    ]));
    for (form, blamed) in [
        (six, "shipping_options"),
        (
            with(
                options_form(),
                "shipping_address_collection[allowed_countries][1]",
                "de",
            ),
            "shipping_address_collection[allowed_countries][1]",
        ),
        (
            with(options_form(), "billing_address_collection", "always"),
            "billing_address_collection",
        ),
        (
            with(
                options_form(),
                "consent_collection[terms_of_service]",
                "yes",
            ),
            "consent_collection[terms_of_service]",
        ),
        (
            with(options_form(), "submit_type", "subscribe"),
            "submit_type",
        ),
        (
            with(options_form(), "custom_fields[1][key]", "giftnote"),
            "custom_fields[1][key]",
        ),
        (
            with(options_form(), "custom_fields[0][key]", "gift-note"),
            "custom_fields[0][key]",
        ),
        (four_fields, "custom_fields"),
        (eleven, "optional_items"),
        (
            with(options_form(), "optional_items[0][price]", "price_nope"),
            "optional_items[0][price]",
        ),
        (
            with(
                plain_subscription.clone(),
                "invoice_creation[enabled]",
                "true",
            ),
            "invoice_creation",
        ),
        (
            with(plain_subscription.clone(), "submit_type", "pay"),
            "submit_type",
        ),
        (
            with(
                plain_subscription.clone(),
                "payment_intent_data[setup_future_usage]",
                "on_session",
            ),
            "payment_intent_data",
        ),
        (
            with(
                plain_subscription,
                "shipping_options[0][shipping_rate]",
                "shr_standard",
            ),
            "shipping_options",
        ),
        (
            with(options_form(), "phone_number_collection[enabled]", "maybe"),
            "phone_number_collection[enabled]",
        ),
    ] {
        let (status, param, _, message) = refused(&h, &form).await;
        assert_eq!((status, param.as_str()), (400, blamed), "{message}");
    }
    let (_, _, _, message) = refused(
        &h,
        &with(
            subscription(pairs(&[("success_url", "http://shop.test/thanks")])),
            "invoice_creation[enabled]",
            "true",
        ),
    )
    .await;
    assert!(
        message
            .starts_with("You can only enable invoice creation when `mode` is set to `payment`."),
        "{message}"
    );
}

#[tokio::test]
async fn a_quantity_outside_its_adjustable_range_is_refused() {
    let h = Harness::start().await;
    let (status, param, _, _) =
        refused(&h, &with(options_form(), "line_items[0][quantity]", "11")).await;
    assert_eq!((status, param.as_str()), (400, "line_items[0][quantity]"));
    let (status, param, _, _) = refused(
        &h,
        &with(options_form(), "optional_items[0][quantity]", "6"),
    )
    .await;
    assert_eq!(
        (status, param.as_str()),
        (400, "optional_items[0][quantity]")
    );
    let (status, param, _, _) = refused(
        &h,
        &with(
            options_form(),
            "line_items[0][adjustable_quantity][minimum]",
            "20",
        ),
    )
    .await;
    assert_eq!(
        (status, param.as_str()),
        (400, "line_items[0][adjustable_quantity][maximum]")
    );

    let session = create(&h, &options_form()).await;
    let page = format!("/c/pay/{}", session["id"].as_str().unwrap());
    for (field, value) in [
        ("quantity_0", "11"),
        ("quantity_0", "0"),
        ("quantity_0", "two"),
        ("optional_quantity_price_tea", "6"),
    ] {
        let mut fields = fields_but(&PAY_TO_FRANCE, &[(field, value)]);
        fields.push(("optional_price_tea", "on"));
        let (status, _, body) = post_form(&h, &page, &fields).await;
        assert_eq!(status, 400, "{field}={value}");
        assert!(body.contains("id=\"error\""), "{field}={value}: {body}");
    }
    let (status, _, body) = post_form(
        &h,
        &page,
        &fields_but(&PAY_TO_FRANCE, &[("quantity_1", "2")]),
    )
    .await;
    assert_eq!(status, 400, "no line 1: {body}");

    // A line without adjustable_quantity keeps its quantity.
    let mut two_lines = options_form();
    two_lines.extend(pairs(&[
        ("line_items[1][price]", "price_poster"),
        ("line_items[1][quantity]", "1"),
    ]));
    let session = create(&h, &two_lines).await;
    let page = format!("/c/pay/{}", session["id"].as_str().unwrap());
    let (status, _, body) = post_form(
        &h,
        &page,
        &fields_but(&PAY_TO_FRANCE, &[("quantity_1", "2")]),
    )
    .await;
    assert_eq!(status, 400);
    assert!(body.contains("cannot be changed"), "{body}");
}

/// Pays an `options_form` session with `fields`; the session then, retrieved with its tax
/// breakdown and shipping rate expanded.
async fn pay_options_session(
    h: &Harness,
    form: &[(String, String)],
    fields: &[(&str, &str)],
) -> Value {
    let session = create(h, form).await;
    let id = session["id"].as_str().unwrap();
    let (status, location, body) = post_form(h, &format!("/c/pay/{id}"), fields).await;
    assert_eq!(status, 303, "{body}");
    assert_eq!(
        location.unwrap(),
        format!("http://shop.test/thanks?session_id={id}")
    );
    let query =
        "expand[]=total_details.breakdown&expand[]=shipping_cost.shipping_rate&expand[]=line_items";
    let (status, paid) = api_call(
        h,
        "GET",
        &format!("/v1/checkout/sessions/{id}?{query}"),
        &[],
        &[],
    )
    .await;
    assert_eq!(status, 200);
    paid
}

#[tokio::test]
async fn paying_fills_shipping_rate_tax_details_fields_and_terms_as_stripe_does() {
    let h = Harness::start().await;
    let paid = pay_options_session(&h, &options_form(), &PAY_TO_FRANCE).await;
    let address = serde_json::json!({
        "city": "Paris", "country": "FR", "line1": "1 rue de Rivoli", "line2": null,
        "postal_code": "75001", "state": null,
    });
    assert_eq!(
        paid["collected_information"],
        serde_json::json!({"shipping_details": {"name": "Ada Lovelace", "address": address}})
    );
    assert!(paid.get("shipping_details").is_none(), "not at basil");
    // 2 mugs (30.00) and standard shipping (4.90) to France: 20 % VAT on 34.90 is 6.98.
    assert_eq!(paid["amount_subtotal"], 3000);
    assert_eq!(paid["amount_total"], 4188);
    assert_eq!(paid["shipping_cost"]["amount_subtotal"], 490);
    assert_eq!(paid["shipping_cost"]["amount_tax"], 98);
    assert_eq!(paid["shipping_cost"]["amount_total"], 588);
    let rate = &paid["shipping_cost"]["shipping_rate"];
    assert_eq!(
        (&rate["id"], &rate["object"]),
        (&"shr_standard".into(), &"shipping_rate".into())
    );
    assert_eq!(
        rate["fixed_amount"],
        serde_json::json!({"amount": 490, "currency": "eur"})
    );
    let totals = &paid["total_details"];
    assert_eq!(
        (
            &totals["amount_discount"],
            &totals["amount_shipping"],
            &totals["amount_tax"]
        ),
        (&0.into(), &490.into(), &698.into())
    );
    assert_eq!(totals["breakdown"]["discounts"], serde_json::json!([]));
    let tax = &totals["breakdown"]["taxes"][0];
    assert_eq!(
        (&tax["amount"], &tax["taxable_amount"]),
        (&698.into(), &3490.into())
    );
    assert_eq!(tax["taxability_reason"], "standard_rated");
    let vat = &tax["rate"];
    assert!(vat["id"].as_str().unwrap().starts_with("txr_"));
    assert_eq!(
        (
            &vat["object"],
            &vat["display_name"],
            &vat["jurisdiction"],
            &vat["country"],
            &vat["inclusive"]
        ),
        (
            &"tax_rate".into(),
            &"VAT".into(),
            &"FR".into(),
            &"FR".into(),
            &false.into()
        )
    );
    assert_eq!(vat["percentage"].as_f64(), Some(20.0));
    let item = &paid["line_items"]["data"][0];
    assert_eq!(
        (
            &item["quantity"],
            &item["amount_subtotal"],
            &item["amount_tax"],
            &item["amount_total"]
        ),
        (&2.into(), &3000.into(), &600.into(), &3600.into())
    );
    let details = &paid["customer_details"];
    assert_eq!(details["phone"], "+33612345678");
    assert_eq!(
        details["address"], address,
        "billing required: the shipping address"
    );
    assert_eq!(
        details["tax_ids"],
        serde_json::json!([{"type": "eu_vat", "value": "FR12345678901"}])
    );
    assert_eq!(details["email"], "ada@example.com");
    let fields = &paid["custom_fields"];
    assert_eq!(fields[0]["text"]["value"], "Happy birthday");
    assert_eq!(fields[1]["dropdown"]["value"], "l");
    assert_eq!(
        fields[2]["numeric"]["value"],
        Value::Null,
        "optional, left empty"
    );
    assert_eq!(paid["consent"]["terms_of_service"], "accepted");
    assert_eq!(paid["automatic_tax"]["status"], "complete");

    // The PaymentIntent charges the new total; the webhook and the bundle's types agree.
    let client = h.client(KEY);
    let intent = client
        .retrieve_payment_intent(
            &paid["payment_intent"].as_str().unwrap().parse().unwrap(),
            None,
        )
        .await
        .unwrap();
    assert_eq!((intent.amount, intent.amount_received), (4188, 4188));
    let events = h.webhooks(1).await;
    let completed = &events[0]["data"]["object"];
    assert_eq!(completed["amount_total"], 4188);
    let typed: checkout_core::stripe::CheckoutSession =
        serde_json::from_value(completed.clone()).unwrap();
    assert_eq!(
        typed.shipping().unwrap().name.as_deref(),
        Some("Ada Lovelace")
    );
    assert_eq!(typed.custom_fields[0].value(), Some("Happy birthday"));
    let typed: checkout_core::stripe::CheckoutSession =
        serde_json::from_value(paid.clone()).unwrap();
    assert_eq!(
        typed.total_details.unwrap().breakdown.unwrap().taxes[0].label(),
        "VAT 20%"
    );
    assert_eq!(
        typed
            .shipping_cost
            .unwrap()
            .shipping_rate
            .unwrap()
            .display_name(),
        Some("Standard shipping")
    );

    // To Germany, express, three mugs and the optional tea: 19 % on 45.00, 25.00 and 12.00.
    let germany = fields_but(
        &PAY_TO_FRANCE,
        &[
            ("shipping_country", "DE"),
            ("shipping_rate", "shr_express"),
            ("quantity_0", "3"),
            ("optional_price_tea", "on"),
            ("tax_id", ""),
        ],
    );
    let paid = pay_options_session(&h, &options_form(), &germany).await;
    let items = paid["line_items"]["data"].as_array().unwrap();
    let lines: Vec<(&str, i64, i64, i64)> = items
        .iter()
        .map(|i| {
            (
                i["price"]["id"].as_str().unwrap(),
                i["quantity"].as_i64().unwrap(),
                i["amount_subtotal"].as_i64().unwrap(),
                i["amount_tax"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        lines,
        [("price_mug", 3, 4500, 855), ("price_tea", 1, 2500, 475)]
    );
    assert_eq!(paid["shipping_cost"]["amount_tax"], 228);
    assert_eq!(paid["total_details"]["amount_tax"], 1558);
    assert_eq!(paid["amount_total"], 4500 + 2500 + 1200 + 1558);
    assert_eq!(
        paid["total_details"]["breakdown"]["taxes"][0]["rate"]["percentage"].as_f64(),
        Some(19.0)
    );
    assert_eq!(paid["customer_details"]["tax_ids"], serde_json::json!([]));
}

#[tokio::test]
async fn paying_without_what_the_session_requires_is_refused_on_the_page() {
    let h = Harness::start().await;
    let session = create(&h, &options_form()).await;
    let id = session["id"].as_str().unwrap();
    let page = format!("/c/pay/{id}");
    for (field, value, said) in [
        ("tos", "", "terms of service"),
        ("shipping_line1", "", "shipping address"),
        ("shipping_country", "US", "We do not ship to US"),
        ("shipping_rate", "", "shipping rate"),
        ("shipping_rate", "shr_other", "not one of"),
        ("phone", "", "phone number"),
        ("custom_size", "", "Size is required"),
        ("custom_size", "xl", "options for Size"),
        (
            "custom_giftnote",
            "x",
            "Gift note must be 2 to 120 characters",
        ),
        ("custom_ordernumber", "12ab", "digits only"),
        ("tax_id", "12", "not a VAT number"),
    ] {
        let (status, location, body) =
            post_form(&h, &page, &fields_but(&PAY_TO_FRANCE, &[(field, value)])).await;
        assert_eq!((status, location), (400, None), "{field}={value}");
        assert!(body.contains(said), "{field}={value}: {body}");
        assert!(
            body.contains(r#"value="1 rue de Rivoli""#) || field == "shipping_line1",
            "refilled"
        );
    }
    let (_, open) = api_call(&h, "GET", &format!("/v1/checkout/sessions/{id}"), &[], &[]).await;
    assert_eq!(open["status"], "open", "nothing changed");
    assert_eq!(open["customer_details"], Value::Null);
    let (status, _, _) = post_form(&h, &page, &PAY_TO_FRANCE).await;
    assert_eq!(status, 303, "filled in, it pays");
}

#[tokio::test]
async fn the_expire_route_expires_an_open_session_once_and_sends_the_event() {
    let h = Harness::start().await;
    let form = Harness::session_form(&[("price_mug", 1)]);
    let session = create(&h, form.pairs()).await;
    let id = session["id"].as_str().unwrap();
    let expire = format!("/v1/checkout/sessions/{id}/expire");
    let (status, expired) = api_call(&h, "POST", &expire, &[], &[]).await;
    assert_eq!(status, 200, "{expired}");
    assert_eq!(
        (&expired["id"], &expired["status"]),
        (&id.into(), &"expired".into())
    );
    let recovery_url = expired["after_expiration"]["recovery"]["url"]
        .as_str()
        .unwrap();
    assert_eq!(recovery_url, format!("{}/r/{id}", h.url));
    let events = h.webhooks(1).await;
    assert_eq!(types(&events), ["checkout.session.expired"]);
    assert_eq!(
        events[0]["data"]["object"]["after_expiration"]["recovery"]["url"],
        recovery_url
    );

    let (status, again) = api_call(&h, "POST", &expire, &[], &[]).await;
    assert_eq!(status, 400);
    assert!(
        again["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with(r#"Only Checkout Sessions with a status in ["open"] can be expired."#),
        "{again}"
    );
    let (status, missing) = api_call(
        &h,
        "POST",
        "/v1/checkout/sessions/cs_test_nope/expire",
        &[],
        &[],
    )
    .await;
    assert_eq!(
        (status, &missing["error"]["code"]),
        (404, &"resource_missing".into())
    );

    // A connected account's session, with an idempotency key: replayed, not expired twice.
    let account = ("stripe-account", "acct_simulated1");
    let (status, connected) = api_call(
        &h,
        "POST",
        "/v1/checkout/sessions",
        form.pairs(),
        &[account],
    )
    .await;
    assert_eq!(status, 200);
    let expire = format!(
        "/v1/checkout/sessions/{}/expire",
        connected["id"].as_str().unwrap()
    );
    let (status, _) = api_call(&h, "POST", &expire, &[], &[]).await;
    assert_eq!(status, 404, "not on the platform");
    let keyed = [account, ("idempotency-key", "expire-1")];
    let (status, first) = api_call(&h, "POST", &expire, &[], &keyed).await;
    assert_eq!((status, &first["status"]), (200, &"expired".into()));
    let (status, replay) = api_call(&h, "POST", &expire, &[], &keyed).await;
    assert_eq!((status, &replay), (200, &first));
    let events = h.webhooks(2).await;
    assert_eq!(events.len(), 2, "the replay sent nothing");
    assert_eq!(events[1]["account"], "acct_simulated1");
}

#[tokio::test]
async fn a_custom_mode_session_pays_on_the_elements_checkout_page() {
    let h = Harness::start().await;
    let custom = with(
        with(options_form(), "ui_mode", "custom"),
        "return_url",
        "http://shop.test/return?session_id={CHECKOUT_SESSION_ID}",
    );
    let custom = custom
        .into_iter()
        .filter(|(k, _)| k != "success_url" && k != "cancel_url")
        .collect::<Vec<_>>();
    let no_return: Vec<(String, String)> = custom
        .iter()
        .filter(|(k, _)| k != "return_url")
        .cloned()
        .collect();
    let (status, param, _, _) = refused(&h, &no_return).await;
    assert_eq!((status, param.as_str()), (400, "return_url"));

    let session = create(&h, &custom).await;
    let id = session["id"].as_str().unwrap();
    assert_eq!(session["ui_mode"], "custom");
    assert_eq!(session["url"], Value::Null);
    let secret = session["client_secret"].as_str().unwrap();
    assert!(secret.starts_with(&format!("{id}_secret_")));

    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("client_secret", secret)
        .finish();
    let request = http::Request::get(format!("{}/elements/checkout?{query}", h.url))
        .body(http_body_util::Full::default())
        .unwrap();
    let (status, _, page) = call(request).await;
    let page = String::from_utf8_lossy(&page);
    assert_eq!(status, 200);
    assert!(
        page.contains(r#"<input type="hidden" name="client_secret""#),
        "the form posts back to /elements/checkout with the secret: {page}"
    );
    assert!(
        page.contains(r#"name="shipping_line1""#),
        "the same form as the hosted page"
    );

    let mut fields = fields_but(&PAY_TO_FRANCE, &[("tos", "")]);
    fields.push(("client_secret", secret));
    let (status, _, body) = post_form(&h, "/elements/checkout", &fields).await;
    assert_eq!(status, 400, "the same checks");
    assert!(
        body.contains(r#"name="client_secret""#),
        "shown again on the custom page"
    );
    fields.push(("tos", "on"));
    let (status, location, _) = post_form(&h, "/elements/checkout", &fields).await;
    assert_eq!(status, 303);
    assert_eq!(
        location.unwrap(),
        format!("http://shop.test/return?session_id={id}")
    );
    let (_, paid) = api_call(&h, "GET", &format!("/v1/checkout/sessions/{id}"), &[], &[]).await;
    assert_eq!(
        (&paid["status"], &paid["amount_total"]),
        (&"complete".into(), &4188.into())
    );

    let (status, _, _) = post_form(
        &h,
        "/elements/checkout",
        &[("client_secret", "cs_test_x_secret_y")],
    )
    .await;
    assert_eq!(status, 400, "an unknown client secret");
}

/// Stripe's basil fixture of an object, from the repository's copy.
fn basil_fixture(name: &str) -> Value {
    let path = format!(
        "{}/../shared/tests/fixtures/stripe/basil/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}")))
        .unwrap()
}

/// The keys that differ between the fixture and the object, at every level where both are
/// objects (lists: their first elements); `metadata` is the merchant's, not compared.
fn key_differences(fixture: &Value, actual: &Value, at: &str, out: &mut Vec<String>) {
    match (fixture, actual) {
        (Value::Object(expected), Value::Object(got)) => {
            for key in expected.keys().filter(|k| !got.contains_key(*k)) {
                out.push(format!("missing {at}.{key}"));
            }
            for key in got.keys().filter(|k| !expected.contains_key(*k)) {
                out.push(format!("extra {at}.{key}"));
            }
            for (key, value) in expected {
                if let Some(inner) = got.get(key).filter(|_| key != "metadata") {
                    key_differences(value, inner, &format!("{at}.{key}"), out);
                }
            }
        }
        (Value::Array(expected), Value::Array(got)) => {
            if let (Some(e), Some(g)) = (expected.first(), got.first()) {
                key_differences(e, g, &format!("{at}[0]"), out);
            }
        }
        _ => {}
    }
}

#[tokio::test]
async fn sessions_and_shipping_rates_have_the_keys_of_stripes_fixtures() {
    let h = Harness::start().await;
    let fixture = basil_fixture("checkout_session");
    let open = create(&h, Harness::session_form(&[("price_mug", 1)]).pairs()).await;
    let mut differences = Vec::new();
    key_differences(&fixture, &open, "checkout_session", &mut differences);
    assert!(differences.is_empty(), "an open session: {differences:?}");

    // Completed, with shipping: the keys Stripe adds when created with them, and no others.
    let mut completed = pay_options_session(&h, &options_form(), &PAY_TO_FRANCE).await;
    let fields = completed.as_object_mut().unwrap();
    for conditional in ["tax_id_collection", "optional_items", "line_items"] {
        assert!(fields.remove(conditional).is_some(), "{conditional}");
    }
    fields["total_details"]
        .as_object_mut()
        .unwrap()
        .remove("breakdown");
    let mut differences = Vec::new();
    key_differences(&fixture, &completed, "checkout_session", &mut differences);
    assert!(
        differences.is_empty(),
        "a completed session: {differences:?}"
    );
    // Where the basil fixture has null, the keys of the latest one (less what came after basil).
    let latest_keys = |object: &Value| -> Vec<String> {
        let mut keys: Vec<String> = object.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    };
    assert_eq!(
        latest_keys(&completed["shipping_cost"]),
        [
            "amount_subtotal",
            "amount_tax",
            "amount_total",
            "shipping_rate"
        ]
    );
    assert_eq!(
        latest_keys(&completed["total_details"]),
        ["amount_discount", "amount_shipping", "amount_tax"]
    );
    assert_eq!(
        latest_keys(&completed["consent"]),
        ["promotions", "terms_of_service"]
    );

    let rate_fixture = basil_fixture("shipping_rate");
    let (status, rate) = api_call(&h, "GET", "/v1/shipping_rates/shr_express", &[], &[]).await;
    assert_eq!(status, 200);
    let mut differences = Vec::new();
    key_differences(&rate_fixture, &rate, "shipping_rate", &mut differences);
    assert!(differences.is_empty(), "{differences:?}");
    assert_eq!(rate["display_name"], "Express shipping");
    assert_eq!(
        rate["fixed_amount"],
        serde_json::json!({"amount": 1200, "currency": "eur"})
    );
    assert_eq!(
        rate["delivery_estimate"],
        serde_json::json!({"minimum": {"unit": "business_day", "value": 1}, "maximum": {"unit": "business_day", "value": 2}})
    );
    let typed: checkout_core::stripe::ShippingRate = serde_json::from_value(rate).unwrap();
    assert_eq!(typed.id, "shr_express");
    let (status, missing) = api_call(&h, "GET", "/v1/shipping_rates/shr_nope", &[], &[]).await;
    assert_eq!(
        (status, &missing["error"]["code"]),
        (404, &"resource_missing".into())
    );
}
