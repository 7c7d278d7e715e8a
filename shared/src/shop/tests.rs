use super::*;
use crate::ids::PriceId;
use crate::stripe::Form;

/// The README's complete example.
pub(crate) const EXAMPLE: &str = include_str!("../../../examples/shop-policy.json");

fn pairs(form: &Form) -> Vec<(String, String)> {
    form.pairs().to_vec()
}

#[test]
fn the_readme_example_parses_and_every_option_reaches_the_form() {
    let shop = Shop::parse(EXAMPLE).unwrap();
    let policy = shop.checkout(None);
    let mug: PriceId = "price_mug".parse().unwrap();
    let mut form = Form::new();
    policy.push_to(&mut form, SessionKind::Payment, &[&mug]);
    let keys: Vec<String> = pairs(&form).into_iter().map(|(k, _)| k).collect();
    for key in [
        "shipping_address_collection[allowed_countries][0]",
        "shipping_options[0][shipping_rate]",
        "phone_number_collection[enabled]",
        "billing_address_collection",
        "tax_id_collection[enabled]",
        "automatic_tax[enabled]",
        "custom_text[submit][message]",
        "custom_fields[0][key]",
        "custom_fields[0][label][custom]",
        "custom_fields[0][label][type]",
        "custom_fields[0][type]",
        "consent_collection[terms_of_service]",
        "invoice_creation[enabled]",
        "submit_type",
        "saved_payment_method_options[payment_method_save]",
        "payment_intent_data[setup_future_usage]",
        "optional_items[0][price]",
        "optional_items[0][quantity]",
    ] {
        assert!(keys.iter().any(|k| k == key), "{key} missing from {keys:?}");
    }
    assert!(policy.adjustable(&mug).is_some());
}

#[test]
fn payment_only_options_stay_out_of_subscriptions() {
    let shop = Shop::parse(EXAMPLE).unwrap();
    let mut form = Form::new();
    shop.checkout(None)
        .push_to(&mut form, SessionKind::Subscription, &[]);
    for (key, _) in pairs(&form) {
        for payment_only in [
            "shipping_options",
            "invoice_creation",
            "submit_type",
            "saved_payment_method_options",
            "payment_intent_data",
        ] {
            assert!(!key.starts_with(payment_only), "{key} in a subscription");
        }
    }
}

#[test]
fn an_optional_item_already_in_the_cart_is_not_offered_again() {
    let shop =
        Shop::parse(r#"{"checkout": {"optional_items": [{"price": "price_tea", "quantity": 1}]}}"#)
            .unwrap();
    let tea: PriceId = "price_tea".parse().unwrap();
    let mut form = Form::new();
    shop.checkout(None)
        .push_to(&mut form, SessionKind::Payment, &[&tea]);
    assert!(form.pairs().is_empty(), "{:?}", form.pairs());
}

#[test]
fn errors_name_the_key_at_fault() {
    for (document, expected) in [
        (
            r#"{"checkout": {"shiping_address_collection": {}}}"#,
            "unknown field `shiping_address_collection`",
        ),
        (
            r#"{"checkout": {"shipping_address_collection": {"allowed_countries": ["fr"]}}}"#,
            "checkout.shipping_address_collection.allowed_countries[0]",
        ),
        (
            r#"{"checkout": {"shipping_address_collection": {"allowed_countries": []}}}"#,
            "checkout.shipping_address_collection.allowed_countries: at least one country",
        ),
        (
            r#"{"checkout": {"shipping_options": [{"shipping_rate": "rate_1"}]}}"#,
            "checkout.shipping_options[0].shipping_rate",
        ),
        (
            r#"{"checkout": {"custom_fields": [{"key": "gift-note", "label": {"type": "custom", "custom": "Gift"}, "type": "text"}]}}"#,
            "checkout.custom_fields[0].key",
        ),
        (
            r#"{"checkout": {"custom_fields": [{"key": "gift", "label": {"type": "custom", "custom": "A label much longer than Stripe's fifty characters allows"}, "type": "text"}]}}"#,
            "checkout.custom_fields[0].label.custom: 1 to 50 characters",
        ),
        (
            r#"{"checkout": {"custom_fields": [{"key": "size", "label": {"type": "custom", "custom": "Size"}, "type": "dropdown"}]}}"#,
            "checkout.custom_fields[0].dropdown",
        ),
        (
            r#"{"checkout": {"payment_intent_data": {"application_fee_amount": 100}}}"#,
            "checkout.payment_intent_data.application_fee_amount: unknown field `application_fee_amount`",
        ),
        (
            r#"{"checkout": {"submit_type": "buy"}}"#,
            "checkout.submit_type",
        ),
        (
            r#"{"checkout": {"adjustable_quantity": {"price_mug": {"enabled": true, "minimum": 5, "maximum": 2}}}}"#,
            "checkout.adjustable_quantity.price_mug",
        ),
        (
            r#"{"checkout": {"optional_items": [{"price": "price_tea", "quantity": 0}]}}"#,
            "checkout.optional_items[0].quantity",
        ),
        (
            r#"{"accounts": {"acct_1": {"checkout": {"automatic_tax": {"enabled": "yes"}}}}}"#,
            "accounts.acct_1.checkout.automatic_tax.enabled",
        ),
        (
            r#"{"accounts": {"acct_1": {"profile": {"name": "Shop", "email_from": "not an address", "postal_address": "1 rue"}}}}"#,
            "accounts.acct_1.profile.email_from",
        ),
        (r#"{"accounts": {"shop_1": {}}}"#, "accounts"),
        (r#"{"checkout": {}, "brand": {}}"#, "unknown field `brand`"),
    ] {
        let err = Shop::parse(document).unwrap_err();
        assert!(
            err.contains(expected),
            "{document}\n  gave {err}\n  expected {expected}"
        );
    }
}

#[test]
fn accounts_fall_back_to_the_platform_part_by_part() {
    let shop = Shop::parse(
        r#"{
          "checkout": {"phone_number_collection": {"enabled": true}},
          "profile": {"name": "Platform", "email_from": "hello@platform.example", "postal_address": "1 Main St"},
          "accounts": {
            "acct_own": {"checkout": {"automatic_tax": {"enabled": true}},
                         "profile": {"name": "Own shop", "email_from": "shop@own.example", "postal_address": "2 High St"}},
            "acct_profile_only": {"profile": {"name": "Profile only", "email_from": "a@b.example", "postal_address": "3 Low St"}}
          }
        }"#,
    )
    .unwrap();
    let own: AccountId = "acct_own".parse().unwrap();
    let profile_only: AccountId = "acct_profile_only".parse().unwrap();
    let stranger: AccountId = "acct_other".parse().unwrap();
    assert!(shop.checkout(Some(&own)).automatic_tax.is_some());
    assert!(shop.checkout(Some(&own)).phone_number_collection.is_none());
    assert!(
        shop.checkout(Some(&profile_only))
            .phone_number_collection
            .is_some()
    );
    assert_eq!(shop.profile(Some(&own)).unwrap().name.as_str(), "Own shop");
    assert_eq!(
        shop.profile(Some(&stranger)).unwrap().name.as_str(),
        "Platform"
    );
    assert_eq!(
        shop.profile(Some(&stranger)).unwrap().name.as_str(),
        "Platform"
    );
    assert_eq!(shop.profile(None).unwrap().name.as_str(), "Platform");
}

#[test]
fn the_config_reads_a_file_or_the_parameter_never_both() {
    let dir = std::env::temp_dir().join(format!("shop-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("policy.json");
    std::fs::write(&path, EXAMPLE).unwrap();
    let path = path.to_string_lossy().to_string();
    let config = ShopConfig::from_env(&[(POLICY_FILE_VAR, path.as_str())]).unwrap();
    assert!(config.shop.checkout(None).automatic_tax.is_some());
    let config = ShopConfig::from_env(&[(POLICY_VAR, EXAMPLE)]).unwrap();
    assert!(config.shop.checkout(None).automatic_tax.is_some());
    assert!(
        ShopConfig::from_env(&[(POLICY_VAR, EXAMPLE), (POLICY_FILE_VAR, path.as_str())]).is_err()
    );
    let err = ShopConfig::from_env(&[(POLICY_FILE_VAR, "/nonexistent/policy.json")]).unwrap_err();
    assert!(err.to_string().contains("SHOP_POLICY_FILE"), "{err}");
    let err = ShopConfig::from_env(&[(POLICY_VAR, r#"{"checkout": {"x": 1}}"#)]).unwrap_err();
    assert!(
        err.to_string().contains("SHOP_POLICY") && err.to_string().contains("`x`"),
        "{err}"
    );
    let empty = ShopConfig::from_env(&[("OTHER", "1")]).unwrap();
    assert_eq!(*empty.shop.checkout(None), CheckoutPolicy::default());
}

#[test]
fn every_option_of_the_example_is_listed_as_a_policy_key() {
    let example: serde_json::Value = serde_json::from_str(EXAMPLE).unwrap();
    let keys: Vec<&String> = example["checkout"].as_object().unwrap().keys().collect();
    assert_eq!(
        keys.len(),
        OPTION_KEYS.len(),
        "the example sets every option"
    );
    for key in keys {
        assert!(OPTION_KEYS.contains(&key.as_str()), "{key}");
    }
}
