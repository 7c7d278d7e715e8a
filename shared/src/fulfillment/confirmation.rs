//! The default fulfilment of a generic bundle: the order is written to the orders table (by
//! `Fulfillment` itself) and the customer gets one order-confirmation email.

use serde::Serialize;

use super::{Fulfil, FulfilError, Fulfilled, Order};
use crate::config::{self, ConfigError, Source};
use crate::mail::{EmailAddress, EmailStatus, MailConfig, MailError, Mailer, Templates};
use crate::metrics::{self, Unit};
use crate::money::Money;

#[derive(Debug, Clone)]
pub struct ConfirmationConfig {
    /// The sender; `None` when `ORDER_CONFIRMATION_EMAIL=false` turns the email off.
    pub mail: Option<MailConfig>,
    pub templates: Templates,
    pub merchant_name: String,
}

impl ConfirmationConfig {
    /// `ORDER_CONFIRMATION_EMAIL` (default on) needs `MAIL_FROM` and `MERCHANT_NAME`.
    ///
    /// # Errors
    /// A missing or invalid variable, named, or a template that does not compile.
    pub fn from_env(env: &impl Source) -> Result<Self, ConfigError> {
        let enabled: bool = config::parsed_or(env, "ORDER_CONFIRMATION_EMAIL", true)?;
        Ok(Self {
            mail: enabled.then(|| MailConfig::from_env(env)).transpose()?,
            templates: Templates::from_env(env)?,
            merchant_name: config::optional(env, "MERCHANT_NAME").unwrap_or_default(),
        })
    }
}

pub struct ConfirmationEmail<M> {
    mailer: Option<M>,
    config: ConfirmationConfig,
}

impl<M: Mailer> ConfirmationEmail<M> {
    /// `mailer`: the sender for `config.mail`, or `None` to send nothing.
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
        let Some(mailer) = &self.mailer else {
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
                to.clone(),
                ConfirmationContext::new(order, &self.config.merchant_name),
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

#[derive(Serialize)]
struct ConfirmationContext<'a> {
    merchant_name: &'a str,
    order: DisplayOrder<'a>,
}

#[derive(Serialize)]
struct DisplayOrder<'a> {
    order_id: &'a str,
    customer_name: Option<&'a str>,
    amount_total_display: String,
    line_items: Vec<DisplayLine<'a>>,
}

#[derive(Serialize)]
struct DisplayLine<'a> {
    description: &'a str,
    quantity: u64,
    amount_total_display: String,
}

impl<'a> ConfirmationContext<'a> {
    fn new(order: &'a Order, merchant_name: &'a str) -> Self {
        let currency = order.details.currency.as_ref();
        let display = |amount| Money { amount, currency }.to_string();
        Self {
            merchant_name,
            order: DisplayOrder {
                order_id: &order.order_id,
                customer_name: order.details.customer_name.as_deref(),
                amount_total_display: display(order.details.amount_total),
                line_items: order
                    .details
                    .line_items
                    .iter()
                    .map(|line| DisplayLine {
                        description: &line.description,
                        quantity: line.quantity,
                        amount_total_display: display(line.amount_total),
                    })
                    .collect(),
            },
        }
    }
}
