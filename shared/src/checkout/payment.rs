//! `POST /payments`: a PaymentIntent and a CustomerSession for the Payment Element, as
//! Stripe's "payments for existing customers" guide has the server make them. The browser
//! sends only Price IDs and quantities; the amount is summed here from the prices as Stripe
//! knows them, and the customer is one the merchant vouched for (`callers`).
//!
//! The PaymentIntent is marked `metadata[checkout_lambda_fulfil]=true`, the mark the
//! fulfillment function fulfils standalone PaymentIntents by (and only those), with the lines
//! bought in `metadata[checkout_lambda_lines]` (`price:product:quantity:unit_amount`,
//! comma-separated), so the order knows its lines without asking Stripe again.

use serde::{Deserialize, Serialize};

use super::request::parse_json;
use super::{CheckoutError, InvalidField, Metadata, RequestLimits, SessionCreator};
use crate::callers::VouchedCustomer;
use crate::ids::{AccountId, CustomerId, PaymentIntentId};
use crate::money::Currency;
use crate::stripe::{
    ErrorKind, FULFIL_METADATA_KEY, Form, IdempotencyKey, LINES_METADATA_KEY, LineItemRequest,
    RESERVED_METADATA_PREFIX, RequestOptions, StripeError,
};

/// `POST /payments`, as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentRequest {
    pub line_items: Vec<LineItemRequest>,
    /// Server calls only.
    #[serde(default)]
    pub customer: Option<CustomerId>,
    #[serde(default)]
    pub customer_token: Option<String>,
    #[serde(default)]
    pub account: Option<AccountId>,
    #[serde(default)]
    pub metadata: Metadata,
}

impl PaymentRequest {
    /// # Errors
    /// A field that is missing, unknown, malformed or over the limits, named.
    pub fn from_json(body: &[u8], limits: &RequestLimits) -> Result<Self, InvalidField> {
        let request: Self = parse_json(body)?;
        limits.check(&request.line_items)?;
        if let Some((key, _)) = request
            .metadata
            .iter()
            .find(|(k, _)| k.starts_with(RESERVED_METADATA_PREFIX))
        {
            return Err(InvalidField::new(
                format!("metadata.{key}"),
                "keys starting with checkout_lambda are the bundle's",
            ));
        }
        Ok(request)
    }
}

/// How the shop lets the Payment Element treat saved payment methods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentsPolicy {
    /// `PAYMENTS_SETUP_FUTURE_USAGE` (`off_session` or `on_session`): save the payment method
    /// for later payments. Unset: not saved by default.
    pub setup_future_usage: Option<String>,
    /// `PAYMENTS_ALLOW_SAVE` (default true): the customer may choose to save a new method.
    pub allow_save: bool,
    /// `PAYMENTS_ALLOW_REMOVE` (default false): the customer may remove a saved method.
    pub allow_remove: bool,
}

impl Default for PaymentsPolicy {
    fn default() -> Self {
        Self {
            setup_future_usage: None,
            allow_save: true,
            allow_remove: false,
        }
    }
}

/// The answer to the merchant page: what `stripe.elements` and `confirmPayment` take.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedPayment {
    pub payment_intent: PaymentIntentId,
    pub client_secret: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_session_client_secret: Option<String>,
}

/// What the lines cost, from Stripe's prices.
struct Priced {
    amount: i64,
    currency: Currency,
    description: String,
    /// `price:product:quantity:unit_amount` per line.
    lines: Vec<String>,
}

impl SessionCreator {
    /// Creates the PaymentIntent (and, for a customer, the CustomerSession) under `key`.
    ///
    /// # Errors
    /// A price that is unknown, recurring, archived, without a fixed amount or in another
    /// currency (400, named); a customer Stripe cannot use (400, without saying why); a reused
    /// key with other parameters (409); Stripe failing (5xx).
    pub async fn create_payment(
        &self,
        request: &PaymentRequest,
        customer: Option<&VouchedCustomer>,
        key: &IdempotencyKey,
        now: i64,
    ) -> Result<CreatedPayment, CheckoutError> {
        let account = request.account.as_ref();
        self.check_account(account)?;
        let priced = self.price(&request.line_items, account, now).await?;
        let mut form = Form::new();
        form.push("amount", priced.amount)
            .push("currency", priced.currency.as_str())
            .push("automatic_payment_methods[enabled]", "true")
            .push("description", &priced.description);
        if let Some(customer) = customer {
            form.push("customer", &customer.customer);
        }
        form.push(format!("metadata[{FULFIL_METADATA_KEY}]"), "true");
        let lines = priced.lines.join(",");
        if lines.chars().count() <= 500 {
            form.push(format!("metadata[{LINES_METADATA_KEY}]"), lines);
        }
        if let Some(reference) = customer.and_then(|c| c.client_reference_id.as_deref()) {
            form.push("metadata[client_reference_id]", reference);
        }
        for (k, v) in request.metadata.iter() {
            form.push(format!("metadata[{k}]"), v);
        }
        form.push_opt(
            "setup_future_usage",
            self.config.payments.setup_future_usage.as_deref(),
        );
        if account.is_some() {
            let fee = self.config.connect.fee.fee_on(priced.amount);
            if fee > 0 {
                form.push("application_fee_amount", fee);
            }
        }
        let options = RequestOptions {
            account,
            idempotency_key: Some(key),
        };
        let intent = self
            .stripe
            .create_payment_intent(&form, options)
            .await
            .map_err(stripe_error)?;
        let client_secret = intent.client_secret.clone().ok_or_else(|| {
            CheckoutError::Stripe(StripeError::Decode(
                "a created PaymentIntent without its client_secret".into(),
            ))
        })?;
        let customer_session = match customer {
            None => None,
            Some(customer) => {
                let session_key = IdempotencyKey::derived(key.as_str(), "customer-session");
                let options = RequestOptions {
                    account,
                    idempotency_key: Some(&session_key),
                };
                let session = self
                    .stripe
                    .create_customer_session(
                        &self.customer_session_params(&customer.customer),
                        options,
                    )
                    .await
                    .map_err(stripe_error)?;
                Some(session.client_secret)
            }
        };
        tracing::info!(payment_intent = %intent.id, account = account.map(AccountId::as_str), amount = priced.amount, saved_methods = customer_session.is_some(), "payment created");
        Ok(CreatedPayment {
            payment_intent: intent.id,
            client_secret,
            customer_session_client_secret: customer_session,
        })
    }

    /// `POST /v1/customer_sessions`: the Payment Element shows the customer's saved methods
    /// (`payment_method_redisplay`) and may save or remove them as the shop allows.
    fn customer_session_params(&self, customer: &CustomerId) -> Form {
        let policy = &self.config.payments;
        let flag = |on: bool| if on { "enabled" } else { "disabled" };
        let mut form = Form::new();
        form.push("customer", customer)
            .push("components[payment_element][enabled]", "true")
            .push(
                "components[payment_element][features][payment_method_redisplay]",
                "enabled",
            )
            .push(
                "components[payment_element][features][payment_method_save]",
                flag(policy.allow_save),
            )
            .push(
                "components[payment_element][features][payment_method_remove]",
                flag(policy.allow_remove),
            );
        form
    }

    /// The total of `items` from Stripe's prices: one-time, active, fixed, one currency.
    async fn price(
        &self,
        items: &[LineItemRequest],
        account: Option<&AccountId>,
        now: i64,
    ) -> Result<Priced, CheckoutError> {
        let mut amount: i64 = 0;
        let mut currency: Option<Currency> = None;
        let mut names = Vec::new();
        let mut lines = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let field = format!("line_items[{i}].price");
            let price = self
                .prices
                .get(&self.stripe, &item.price, account, &field, now)
                .await?;
            let refuse = |why: &str| CheckoutError::from(InvalidField::new(field.clone(), why));
            if price.is_recurring() {
                return Err(refuse(
                    "a recurring price is paid through a subscription Checkout Session (mode=subscription)",
                ));
            }
            if price.active == Some(false) {
                return Err(refuse("this price is archived"));
            }
            let unit = price
                .unit_amount
                .ok_or_else(|| refuse("this price has no fixed unit amount"))?;
            match &currency {
                None => currency = Some(price.currency.clone()),
                Some(c) if *c != price.currency => {
                    return Err(refuse("every price of one payment must be in one currency"));
                }
                Some(_) => {}
            }
            amount = unit
                .checked_mul(i64::from(item.quantity))
                .and_then(|line| amount.checked_add(line))
                .ok_or_else(|| refuse("the total is too large"))?;
            names.push(format!(
                "{} × {}",
                price.product_name().unwrap_or(item.price.as_str()),
                item.quantity
            ));
            lines.push(format!(
                "{}:{}:{}:{unit}",
                item.price,
                price.product_id().unwrap_or_default(),
                item.quantity
            ));
        }
        let currency = currency.ok_or_else(|| InvalidField::new("line_items", "no item"))?;
        if amount <= 0 {
            return Err(InvalidField::new("line_items", "the total must be above zero").into());
        }
        let mut description = names.join(", ");
        if description.chars().count() > 1000 {
            description = description.chars().take(999).collect::<String>() + "…";
        }
        Ok(Priced {
            amount,
            currency,
            description,
            lines,
        })
    }
}

/// Stripe's refusals the caller can act on; the rest as they are. A customer Stripe does not
/// know (or will not use) is one generic error: the answer never tells whether an id exists.
pub(super) fn stripe_error(err: StripeError) -> CheckoutError {
    match err {
        StripeError::Api {
            kind: ErrorKind::Idempotency,
            ..
        } => CheckoutError::IdempotencyConflict,
        StripeError::Api {
            kind: ErrorKind::InvalidRequest,
            param: Some(param),
            ..
        } if param == "customer" => CheckoutError::CustomerUnusable,
        StripeError::Api {
            kind: ErrorKind::InvalidRequest,
            param: Some(param),
            message,
            ..
        } if param.starts_with("line_items") => InvalidField::new(param, message).into(),
        other => CheckoutError::Stripe(other),
    }
}
