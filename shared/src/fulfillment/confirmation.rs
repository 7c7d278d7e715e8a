//! The default fulfilment of a generic bundle: the order is written to the orders table (by
//! `Fulfillment` itself) and the customer gets one order-confirmation email, from the shop
//! the order was placed with (the shop document's profile of its account), saying what was
//! bought and, for a physical order, where it goes.

use serde::Serialize;

use super::{Fulfil, FulfilError, Fulfilled, Order};
use crate::config::{self, ConfigError, Source};
use crate::ids::AccountId;
use crate::mail::{EmailAddress, EmailStatus, MailConfig, MailError, Mailer, Sender, Templates};
use crate::metrics::{self, Unit};
use crate::money::{Currency, Money};
use crate::shop::ShopConfig;
use crate::store::{OrderAmount, OrderDetails};

#[derive(Debug, Clone)]
pub struct ConfirmationConfig {
    /// The sender; `None` when `ORDER_CONFIRMATION_EMAIL=false` turns the email off.
    pub mail: Option<MailConfig>,
    pub templates: Templates,
    /// The shop's name in the text when no shop profile applies (`MERCHANT_NAME`).
    pub merchant_name: String,
    /// The shop document: whose shop each order's email is from (`Shop::profile`).
    pub shop: ShopConfig,
}

impl ConfirmationConfig {
    /// `ORDER_CONFIRMATION_EMAIL` (default on) needs `MAIL_FROM` and `MERCHANT_NAME`.
    ///
    /// # Errors
    /// A missing or invalid variable, named, a template that does not compile, or a shop
    /// document that does not parse.
    pub fn from_env(env: &impl Source) -> Result<Self, ConfigError> {
        let enabled: bool = config::parsed_or(env, "ORDER_CONFIRMATION_EMAIL", true)?;
        Ok(Self {
            mail: enabled.then(|| MailConfig::from_env(env)).transpose()?,
            templates: Templates::from_env(env)?,
            merchant_name: config::optional(env, "MERCHANT_NAME").unwrap_or_default(),
            shop: ShopConfig::from_env(env)?,
        })
    }

    /// Who `account`'s order confirmation is from: its shop profile (or the platform's), else
    /// the configured sender. The confirmation has no postal address or shop URL of its own
    /// configuration, so without a profile it prints neither, as it always has.
    fn sender(&self, mail: &MailConfig, account: Option<&AccountId>) -> Sender {
        match self.shop.shop.profile(account) {
            Some(p) => Sender::profile(
                p.name.as_str(),
                &p.email_from,
                p.postal_address.as_str(),
                p.url.as_ref().map(|url| url.as_str()),
            ),
            None => Sender::configured(mail, &self.merchant_name, None, None),
        }
    }
}

pub struct ConfirmationEmail<M> {
    mailer: Option<M>,
    config: ConfirmationConfig,
}

impl<M: Mailer> ConfirmationEmail<M> {
    /// `mailer`: the sender for `config.mail`, or `None` to send nothing. Without
    /// `config.mail` nothing is sent either: it is the From when no shop profile applies.
    #[must_use]
    pub fn new(config: ConfirmationConfig, mailer: Option<M>) -> Self {
        Self { mailer, config }
    }
}

/// A permanent refusal (a sandbox recipient, a sender SES will not send from) does not block
/// the order: it is fulfilled with the email `failed`, counted, and never retried. SES
/// answering "not now" (throttling) fails the fulfilment, so the claim is released and the
/// trigger retries. No answer at all is `unknown`: see `MailError::Unknown`.
impl<M: Mailer> Fulfil for ConfirmationEmail<M> {
    async fn fulfil(&self, order: &Order) -> Result<Fulfilled, FulfilError> {
        let (Some(mailer), Some(mail)) = (&self.mailer, &self.config.mail) else {
            return Ok(Fulfilled {
                email: Some(EmailStatus::NotSent {
                    reason: "emails_off".into(),
                }),
            });
        };
        let Some(to) = order
            .details
            .customer_email
            .as_deref()
            .and_then(|e| e.parse::<EmailAddress>().ok())
        else {
            tracing::info!(
                order_id = order.order_id,
                "no customer email: no confirmation sent"
            );
            return Ok(Fulfilled {
                email: Some(EmailStatus::NotSent {
                    reason: "no_customer_email".into(),
                }),
            });
        };
        let email = self
            .config
            .templates
            .render(
                "confirmation",
                &self.config.sender(mail, order.account.as_ref()),
                to.clone(),
                ConfirmationContext::new(order),
            )
            .map_err(|e| FulfilError(format!("confirmation template: {e}")))?;
        let status = match mailer.send(&email).await {
            Ok(message_id) => {
                tracing::info!(
                    order_id = order.order_id,
                    recipient = to.hashed(),
                    message_id,
                    "order confirmation sent"
                );
                metrics::emit("ConfirmationEmailsSent", 1.0, Unit::Count, &[]);
                EmailStatus::Sent { message_id }
            }
            Err(MailError::Rejected(reason)) => {
                tracing::error!(
                    order_id = order.order_id,
                    recipient = to.hashed(),
                    error = reason,
                    "order confirmation refused for good; the order is fulfilled without it"
                );
                metrics::emit("ConfirmationEmailsFailed", 1.0, Unit::Count, &[]);
                EmailStatus::Failed { reason }
            }
            Err(MailError::Unknown(detail)) => {
                tracing::warn!(
                    order_id = order.order_id,
                    recipient = to.hashed(),
                    error = detail,
                    "order confirmation outcome unknown; counted as sent"
                );
                metrics::emit(
                    "EmailOutcomeUnknown",
                    1.0,
                    Unit::Count,
                    &[("Email", "confirmation")],
                );
                EmailStatus::Unknown { detail }
            }
            Err(err @ MailError::Unavailable(_)) => return Err(err.into()),
        };
        Ok(Fulfilled {
            email: Some(status),
        })
    }
}

/// The order as the templates print it: amounts as `Money` displays them, and each part of a
/// physical order (shipping, tax, discounts, answers) only when the order has it, so a
/// digital order's email reads as it always has.
#[derive(Serialize)]
struct ConfirmationContext<'a> {
    order: DisplayOrder<'a>,
}

#[derive(Serialize)]
struct DisplayOrder<'a> {
    order_id: &'a str,
    customer_name: Option<&'a str>,
    amount_total_display: String,
    line_items: Vec<DisplayLine<'a>>,
    /// Present when the order has a shipping cost, tax or discounts: the total is then more
    /// than its lines.
    amount_subtotal_display: Option<String>,
    shipping: Option<DisplayShipping<'a>>,
    phone: Option<&'a str>,
    taxes: Vec<DisplayAmount>,
    /// The taxes are part of the prices (the lines, shipping and discounts add up to the
    /// total without them): printed "included", not added.
    tax_included: bool,
    discounts: Vec<DisplayAmount>,
    tax_ids: Vec<DisplayField<'a>>,
    custom_fields: Vec<DisplayField<'a>>,
    terms_accepted: bool,
}

#[derive(Serialize)]
struct DisplayLine<'a> {
    description: &'a str,
    quantity: u64,
    amount_total_display: String,
    /// The customer added it from the shop's optional items.
    optional: bool,
}

#[derive(Serialize)]
struct DisplayShipping<'a> {
    name: Option<&'a str>,
    address: &'a [String],
    rate_name: Option<&'a str>,
    /// What shipping cost, when a rate was chosen or it cost something.
    amount_display: Option<String>,
}

#[derive(Serialize)]
struct DisplayAmount {
    label: String,
    amount_display: String,
}

#[derive(Serialize)]
struct DisplayField<'a> {
    label: String,
    value: &'a str,
}

impl<'a> ConfirmationContext<'a> {
    fn new(order: &'a Order) -> Self {
        let details = &order.details;
        let currency = details.currency.as_ref();
        let display = |amount| Money { amount, currency }.to_string();
        let totals = &details.totals;
        let shipping_amount = details.shipping.as_ref().and_then(|shipping| {
            // Before tax when the totals say so: the tax lines carry shipping's tax, and the
            // lines then add up to the total. No rate and nothing paid: no line at all.
            let amount = if totals.amount_shipping == 0 {
                shipping.amount
            } else {
                totals.amount_shipping
            };
            (shipping.rate_name.is_some() || amount != 0).then(|| display(amount))
        });
        let extras = shipping_amount.is_some() || !totals.is_empty();
        Self {
            order: DisplayOrder {
                order_id: &order.order_id,
                customer_name: details.customer_name.as_deref(),
                amount_total_display: display(details.amount_total),
                line_items: details
                    .line_items
                    .iter()
                    .map(|line| DisplayLine {
                        description: &line.description,
                        quantity: line.quantity,
                        // With tax, shipping or discounts listed below, each line shows
                        // its price before them, so the lines add up to the subtotal.
                        amount_total_display: display(if extras {
                            line.amount_subtotal
                        } else {
                            line.amount_total
                        }),
                        optional: line.optional,
                    })
                    .collect(),
                amount_subtotal_display: extras.then(|| display(details.amount_subtotal)),
                shipping: details.shipping.as_ref().map(|shipping| DisplayShipping {
                    name: shipping.name.as_deref(),
                    address: &shipping.address,
                    rate_name: shipping.rate_name.as_deref(),
                    amount_display: shipping_amount,
                }),
                phone: details.phone.as_deref(),
                taxes: amounts(&totals.taxes, totals.amount_tax, "Tax", 1, currency),
                tax_included: tax_included(details),
                discounts: amounts(
                    &totals.discounts,
                    totals.amount_discount,
                    "Discount",
                    -1,
                    currency,
                ),
                tax_ids: details
                    .tax_ids
                    .iter()
                    .map(|id| DisplayField {
                        label: id.kind.replace('_', " ").to_uppercase(),
                        value: &id.value,
                    })
                    .collect(),
                custom_fields: details
                    .custom_fields
                    .iter()
                    .filter_map(|field| {
                        Some(DisplayField {
                            label: field.label.clone().unwrap_or_else(|| field.key.clone()),
                            value: field.value.as_deref().filter(|v| !v.trim().is_empty())?,
                        })
                    })
                    .collect(),
                terms_accepted: details.terms_accepted,
            },
        }
    }
}

/// The breakdown's lines, or one `fallback` line of `total` when the breakdown was not
/// expanded; `sign` -1 prints discounts as the deductions they are.
fn amounts(
    lines: &[OrderAmount],
    total: i64,
    fallback: &str,
    sign: i64,
    currency: Option<&Currency>,
) -> Vec<DisplayAmount> {
    let display = |amount: i64| {
        Money {
            amount: sign * amount,
            currency,
        }
        .to_string()
    };
    if lines.is_empty() && total != 0 {
        return vec![DisplayAmount {
            label: fallback.into(),
            amount_display: display(total),
        }];
    }
    lines
        .iter()
        .map(|line| DisplayAmount {
            label: line.label.clone(),
            amount_display: display(line.amount),
        })
        .collect()
}

/// Stripe adds exclusive tax to the total and leaves inclusive tax inside the prices: the
/// order's own amounts tell which.
fn tax_included(details: &OrderDetails) -> bool {
    let totals = &details.totals;
    totals.amount_tax != 0
        && details.amount_subtotal - totals.amount_discount + totals.amount_shipping
            == details.amount_total
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::shop::Shop;
    use crate::store::{OrderField, OrderLine, OrderShipping, OrderTaxId, OrderTotals};

    fn config(document: Option<&str>) -> ConfirmationConfig {
        ConfirmationConfig {
            mail: Some(mail()),
            templates: Templates::from_env(&[("UNUSED", "")]).unwrap(),
            merchant_name: "Demo Shop".into(),
            shop: ShopConfig {
                shop: Arc::new(document.map_or_else(Shop::default, |d| Shop::parse(d).unwrap())),
            },
        }
    }

    fn mail() -> MailConfig {
        MailConfig {
            from_address: "orders@demo.example".parse().unwrap(),
            from_name: "Demo Shop".into(),
            configuration_set: None,
        }
    }

    fn line(description: &str, amount: i64, optional: bool) -> OrderLine {
        OrderLine {
            description: description.into(),
            quantity: 1,
            amount_subtotal: amount,
            amount_total: amount,
            optional,
            ..OrderLine::default()
        }
    }

    fn digital() -> Order {
        Order {
            order_id: "cs_test_digital".into(),
            account: None,
            details: OrderDetails {
                line_items: vec![line("E-book", 1500, false)],
                currency: Some("eur".parse().unwrap()),
                amount_subtotal: 1500,
                amount_total: 1500,
                customer_email: Some("jenny@example.com".into()),
                customer_name: Some("Jenny".into()),
                ..OrderDetails::default()
            },
        }
    }

    /// The order `fulfillment::order`'s own test reads from a shipped session: 30.00 of
    /// goods, 4.90 shipping before tax, 6.98 VAT on both, 41.88 in all.
    fn shipped() -> Order {
        Order {
            order_id: "cs_test_shipped".into(),
            account: None,
            details: OrderDetails {
                line_items: vec![line("Mug", 1500, false), line("Tea <b>box</b>", 1500, true)],
                currency: Some("eur".parse().unwrap()),
                amount_subtotal: 3000,
                amount_total: 4188,
                customer_email: Some("jenny@example.com".into()),
                customer_name: Some("Jenny".into()),
                shipping: Some(OrderShipping {
                    name: Some("Jenny Rosen".into()),
                    address: vec![
                        "1 rue de la Paix".into(),
                        "Bât. B".into(),
                        "75002 Paris".into(),
                        "FR".into(),
                    ],
                    country: Some("FR".into()),
                    rate: Some("shr_standard".into()),
                    rate_name: Some("Standard shipping".into()),
                    amount: 588,
                }),
                phone: Some("+33612345678".into()),
                totals: OrderTotals {
                    amount_tax: 698,
                    amount_shipping: 490,
                    taxes: vec![OrderAmount {
                        label: "VAT 20%".into(),
                        amount: 698,
                    }],
                    ..OrderTotals::default()
                },
                tax_ids: vec![OrderTaxId {
                    kind: "eu_vat".into(),
                    value: "FR12345678901".into(),
                }],
                custom_fields: vec![
                    OrderField {
                        key: "giftnote".into(),
                        label: Some("Gift note".into()),
                        value: Some("Happy <3".into()),
                    },
                    OrderField {
                        key: "floor".into(),
                        label: Some("Floor".into()),
                        value: None,
                    },
                ],
                terms_accepted: true,
                ..OrderDetails::default()
            },
        }
    }

    fn render(config: &ConfirmationConfig, order: &Order) -> crate::mail::Email {
        config
            .templates
            .render(
                "confirmation",
                &config.sender(&mail(), order.account.as_ref()),
                "jenny@example.com".parse().unwrap(),
                ConfirmationContext::new(order),
            )
            .unwrap()
    }

    #[test]
    fn a_digital_orders_email_reads_as_it_always_has() {
        let email = render(&config(None), &digital());
        assert_eq!(email.subject, "Demo Shop: your order is confirmed");
        assert_eq!(
            email.text,
            "Thank you, Jenny!\n\nDemo Shop has received your payment. Here is your order:\n\n\
             - E-book x 1: 15.00 EUR\n\nTotal: 15.00 EUR\n\nOrder reference: cs_test_digital"
        );
        for absent in ["Subtotal", "Shipping", "Terms", "(added)", "<h2"] {
            assert!(!email.html.contains(absent), "{absent} in {}", email.html);
        }
        assert_eq!(
            (email.from_name.as_str(), email.from_address.as_str()),
            ("Demo Shop", "orders@demo.example")
        );
    }

    #[test]
    fn a_shipped_orders_email_says_where_it_goes_and_what_it_cost() {
        let email = render(&config(None), &shipped());
        assert_eq!(
            email.text,
            "Thank you, Jenny!\n\nDemo Shop has received your payment. Here is your order:\n\n\
             - Mug x 1: 15.00 EUR\n\
             - Tea <b>box</b> x 1: 15.00 EUR (added)\n\n\
             Subtotal: 30.00 EUR\n\
             Shipping (Standard shipping): 4.90 EUR\n\
             VAT 20%: 6.98 EUR\n\n\
             Total: 41.88 EUR\n\n\
             Shipping to:\nJenny Rosen\n1 rue de la Paix\nBât. B\n75002 Paris\nFR\n+33612345678\n\n\
             EU VAT: FR12345678901\n\
             Gift note: Happy <3\n\
             Terms of service accepted\n\n\
             Order reference: cs_test_shipped"
        );
        let html = &email.html;
        for expected in [
            "Tea &lt;b&gt;box&lt;&#x2f;b&gt; <em style=\"color: #666;\">(added)</em>",
            "<td colspan=\"2\">Subtotal</td><td style=\"text-align: right;\">30.00 EUR</td>",
            "Shipping: Standard shipping</td><td style=\"text-align: right;\">4.90 EUR</td>",
            "VAT 20%</td><td style=\"text-align: right;\">6.98 EUR</td>",
            "<strong>41.88 EUR</strong>",
            "Jenny Rosen<br>1 rue de la Paix<br>Bât. B<br>75002 Paris<br>FR<br>+33612345678",
            "EU VAT: FR12345678901<br>",
            "Gift note: Happy &lt;3<br>",
            "Terms of service accepted",
        ] {
            assert!(html.contains(expected), "{expected} not in {html}");
        }
        assert!(!html.contains("Floor"), "an unanswered field is left out");
    }

    #[test]
    fn inclusive_tax_and_discounts_read_as_what_they_are() {
        let mut order = shipped();
        let details = &mut order.details;
        details.shipping = None;
        // 30.00 of goods with their VAT inside, less 3.00 off: 27.00.
        details.amount_total = 2700;
        details.totals = OrderTotals {
            amount_tax: 450,
            amount_discount: 300,
            taxes: vec![OrderAmount {
                label: "VAT 20%".into(),
                amount: 450,
            }],
            discounts: vec![OrderAmount {
                label: "WELCOME10".into(),
                amount: 300,
            }],
            ..OrderTotals::default()
        };
        let text = render(&config(None), &order).text;
        assert!(
            text.contains(
                "Subtotal: 30.00 EUR\nWELCOME10: -3.00 EUR\nVAT 20% (included): 4.50 EUR\n\nTotal: 27.00 EUR\n\nPhone: +33612345678\n"
            ),
            "{text}"
        );
    }

    const DOCUMENT: &str = r#"{
        "profile": {"name": "Platform", "email_from": "hello@platform.example", "postal_address": "1 Main St"},
        "accounts": {
            "acct_1Own": {"profile": {"name": "Le Comptoir", "email_from": "orders@comptoir.example",
                                      "postal_address": "1 rue de la Paix, 75002 Paris", "url": "https://comptoir.example"}},
            "acct_1Bare": {}
        }
    }"#;

    #[test]
    fn a_connected_accounts_order_comes_from_its_own_shop() {
        let config = config(Some(DOCUMENT));
        let mut order = shipped();
        order.account = Some("acct_1Own".parse().unwrap());
        let email = render(&config, &order);
        assert_eq!(
            (email.from_name.as_str(), email.from_address.as_str()),
            ("Le Comptoir", "orders@comptoir.example")
        );
        assert_eq!(email.subject, "Le Comptoir: your order is confirmed");
        assert!(email.text.contains("Le Comptoir has received your payment"));
        assert!(email.text.ends_with(
            "Order reference: cs_test_shipped\nLe Comptoir: https://comptoir.example\n1 rue de la Paix, 75002 Paris"
        ));
        assert!(email.html.contains("1 rue de la Paix, 75002 Paris</p>"));
        assert!(!email.html.contains("Demo Shop") && !email.text.contains("Demo Shop"));

        // An account without a profile, and no account: the platform's.
        for account in [Some("acct_1Bare"), Some("acct_1Unknown"), None] {
            order.account = account.map(|a| a.parse().unwrap());
            let email = render(&config, &order);
            assert_eq!(email.from_address.as_str(), "hello@platform.example");
            assert!(
                email
                    .text
                    .ends_with("Order reference: cs_test_shipped\n1 Main St")
            );
            assert!(email.text.contains("Platform has received"), "{account:?}");
        }
    }
}
