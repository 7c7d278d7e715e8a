//! Starting a payment for merchant pages: `POST /checkout/sessions` (a Checkout Session) and
//! `POST /payments` (a PaymentIntent for the Payment Element, existing customers).
//!
//! Every session is created with what the rest of the bundle relies on: promotional consent
//! collection and recovery (abandoned-cart emails), `{CHECKOUT_SESSION_ID}` in the success
//! URL (fulfilment on the landing page), an expiry, and for Connect platforms the connected
//! account and an application fee computed here, never taken from the client.

mod config;
mod cors;
mod expire;
mod fields;
mod handler;
mod payment;
mod prices;
mod replay;
mod request;

use std::collections::HashMap;
use std::sync::Arc;

pub use config::{CheckoutConfig, ConnectConfig, FeePolicy};
pub use cors::Cors;
pub use expire::{EXPIRE_SUFFIX, SESSIONS_PREFIX};
pub use handler::{MAX_BODY_BYTES, PAYMENTS_PATH, handle};
pub use payment::{CreatedPayment, PaymentRequest, PaymentsPolicy};
pub use prices::PriceCache;
pub use request::{
    ClientReference, CreateSessionRequest, EmailAddress, InvalidField, Locale, Metadata,
    RequestLimits, RequestMode, RequestUiMode,
};

use http::StatusCode;
use serde::Serialize;

use crate::callers::{CallerError, Callers, VouchedCustomer};
use crate::clock::Clock;
use crate::http::{ApiError, PayloadTooLarge};
use crate::ids::{AccountId, PriceId, SessionId};
use crate::money::BasisPoints;
use crate::shop::SessionKind;
use crate::stock::{Cart, Stock, StockError, stock_from_config};
use crate::store::{DynamoDb, RequestStore, SessionRecord, SessionStore, StoreError};
use crate::stripe::{Form, IdempotencyKey, Mode, RequestOptions, StripeClient, StripeError};

#[derive(Debug, thiserror::Error)]
pub enum CheckoutError {
    #[error(transparent)]
    Invalid(#[from] InvalidField),
    #[error("the body must be application/json or application/x-www-form-urlencoded")]
    UnsupportedMediaType,
    /// The most common curl mistake: `-d '{…}'` sends JSON as a form.
    #[error(
        "this body is JSON: send it with Content-Type: application/json (curl: -H 'Content-Type: application/json')"
    )]
    JsonWithoutJsonType,
    #[error(transparent)]
    TooLarge(#[from] PayloadTooLarge),
    #[error("origin not allowed")]
    OriginNotAllowed,
    #[error("this Idempotency-Key was already used with other parameters")]
    IdempotencyConflict,
    #[error(transparent)]
    Caller(#[from] CallerError),
    /// An expire route for a session this bundle did not create.
    #[error("no such Checkout Session")]
    UnknownSession,
    /// An expire route for a session already paid.
    #[error("this Checkout Session is complete: it cannot be expired")]
    SessionComplete,
    /// Stripe would not use the customer; the message never says whether it exists.
    #[error("this customer cannot be used for this payment")]
    CustomerUnusable,
    #[error(transparent)]
    Stripe(#[from] StripeError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Stock(#[from] StockError),
}

impl ApiError for CheckoutError {
    fn status(&self) -> StatusCode {
        match self {
            Self::Invalid(_) | Self::CustomerUnusable => StatusCode::BAD_REQUEST,
            Self::UnsupportedMediaType | Self::JsonWithoutJsonType => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            Self::TooLarge(err) => err.status(),
            Self::OriginNotAllowed => StatusCode::FORBIDDEN,
            Self::IdempotencyConflict | Self::SessionComplete => StatusCode::CONFLICT,
            Self::UnknownSession => StatusCode::NOT_FOUND,
            Self::Caller(err) => err.status(),
            Self::Stripe(err) => err.status(),
            Self::Store(err) => err.status(),
            Self::Stock(err) => err.status(),
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::Invalid(_) => "invalid_request",
            Self::UnsupportedMediaType | Self::JsonWithoutJsonType => "unsupported_media_type",
            Self::TooLarge(err) => err.code(),
            Self::OriginNotAllowed => "origin_not_allowed",
            Self::IdempotencyConflict => "idempotency_conflict",
            Self::UnknownSession => "not_found",
            Self::SessionComplete => "session_complete",
            Self::Caller(err) => err.code(),
            Self::CustomerUnusable => "customer_unusable",
            Self::Stripe(err) => err.code(),
            Self::Store(err) => err.code(),
            Self::Stock(err) => err.code(),
        }
    }

    fn param(&self) -> Option<&str> {
        match self {
            Self::Invalid(invalid) => Some(&invalid.field),
            Self::Caller(err) => err.param(),
            Self::CustomerUnusable => Some("customer"),
            Self::Stock(err) => err.param(),
            _ => None,
        }
    }
}

/// The answer to a merchant page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct CreatedSession {
    pub id: SessionId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    pub expires_at: i64,
}

pub struct SessionCreator {
    config: CheckoutConfig,
    stripe: StripeClient,
    sessions: SessionStore,
    requests: RequestStore,
    callers: Callers,
    prices: PriceCache,
    stock: Arc<dyn Stock>,
    clock: Clock,
}

impl SessionCreator {
    #[must_use]
    pub fn new(config: CheckoutConfig, dynamodb: DynamoDb) -> Self {
        Self {
            stripe: StripeClient::new(config.stripe.clone()),
            sessions: SessionStore::new(config.sessions_table.clone(), dynamodb.clone()),
            requests: RequestStore::new(config.requests_table.clone(), dynamodb.clone()),
            stock: stock_from_config(config.stock.clone(), dynamodb),
            callers: Callers::new(config.callers.clone()),
            prices: PriceCache::default(),
            config,
            clock: Clock::system(),
        }
    }

    /// The same creator with the merchant's own stock keeper (an inventory system).
    #[must_use]
    pub fn with_stock(mut self, stock: Arc<dyn Stock>) -> Self {
        self.stock = stock;
        self
    }

    /// The same creator reading time from `clock` (tests).
    #[must_use]
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    #[must_use]
    pub fn config(&self) -> &CheckoutConfig {
        &self.config
    }

    #[must_use]
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    #[must_use]
    pub fn callers(&self) -> &Callers {
        &self.callers
    }

    fn check_account(&self, account: Option<&AccountId>) -> Result<(), CheckoutError> {
        match account {
            Some(account) if !self.config.connect.accounts.contains(account) => {
                Err(InvalidField::new("account", "not a connected account of this platform").into())
            }
            _ => Ok(()),
        }
    }

    /// Creates the session at Stripe under `key`, then records it. `customer` is the one the
    /// caller was vouched for (it replaces the request's own fields); `now` is the first
    /// request's time when this one repeats it.
    ///
    /// # Errors
    /// A request the configuration does not allow or Stripe blames on the caller (400), a
    /// reused key with other parameters (409), Stripe or DynamoDB failing (5xx).
    pub async fn create(
        &self,
        mut request: CreateSessionRequest,
        customer: Option<VouchedCustomer>,
        key: IdempotencyKey,
        now: i64,
    ) -> Result<CreatedSession, CheckoutError> {
        if let Some(vouched) = customer {
            if let Some(reference) = vouched.client_reference_id {
                if request
                    .client_reference_id
                    .as_ref()
                    .is_some_and(|r| r.as_str() != reference)
                {
                    return Err(InvalidField::new(
                        "client_reference_id",
                        "the customer token sets it; leave it out or send the same",
                    )
                    .into());
                }
                request.client_reference_id = Some(
                    ClientReference::try_from(reference)
                        .map_err(|m| InvalidField::new("customer_token", m))?,
                );
            }
            request.customer = Some(vouched.customer);
        }
        let account = request.account.as_ref();
        self.check_account(account)?;
        let fee = match account {
            Some(account) => self.application_fee(&request, account).await?,
            None => ApplicationFee::None,
        };
        let params = self.config.session_params(&request, now, &fee)?;
        let options = RequestOptions {
            account,
            idempotency_key: Some(&key),
        };
        let session = self
            .stripe
            .create_checkout_session(&params, options)
            .await
            .map_err(payment::stripe_error)?;
        self.reserve(&session.id, &request).await?;

        let record = SessionRecord {
            session_id: session.id.clone(),
            account: request.account.clone(),
            customer: request.customer.clone(),
            customer_email: request
                .customer_email
                .as_ref()
                .map(|e| e.as_str().to_string()),
            mode: session.mode,
            items: request.line_items.clone(),
            created_at: now,
            expires_at: session.expires_at,
        };
        self.sessions.record(&record).await?;
        tracing::info!(session_id = %session.id, account = account.map(AccountId::as_str), items = request.line_items.len(), "checkout session created");
        Ok(CreatedSession {
            id: session.id,
            url: session.url,
            client_secret: session.client_secret,
            expires_at: session.expires_at,
        })
    }

    /// Takes the cart's units for the session Stripe just made. Out of stock: the session
    /// is expired at once (its URL was never handed out) and the caller told which price ran
    /// out. A repeat of the same request (an `Idempotency-Key` retry) finds the units already
    /// taken for this session.
    async fn reserve(
        &self,
        session: &SessionId,
        request: &CreateSessionRequest,
    ) -> Result<(), CheckoutError> {
        let cart = Cart {
            session: session.clone(),
            account: request.account.clone(),
            lines: request
                .line_items
                .iter()
                .map(|i| (i.price.clone(), u64::from(i.quantity)))
                .collect(),
        };
        match self.stock.reserve(&cart).await {
            Ok(_) => Ok(()),
            // The stock keeper failing is not the cart's fault: the session stays open, its
            // URL never given; a retry with the caller's key gets it back and reserves then.
            Err(StockError::Store(err)) => Err(StockError::Store(err).into()),
            Err(err) => {
                let options = RequestOptions {
                    account: request.account.as_ref(),
                    idempotency_key: None,
                };
                // Best effort: an unexpired session nobody has the URL of expires on its own.
                if let Err(expire) = self.stripe.expire_checkout_session(session, options).await {
                    tracing::warn!(session_id = %session, error = %expire, "could not expire a session refused for stock; it expires at its expires_at");
                }
                Err(err.into())
            }
        }
    }

    /// The platform's fee on a connected account's sale, from the configured policy and the
    /// prices' amounts as Stripe knows them.
    async fn application_fee(
        &self,
        request: &CreateSessionRequest,
        account: &AccountId,
    ) -> Result<ApplicationFee, CheckoutError> {
        let policy = &self.config.connect.fee;
        match request.mode {
            RequestMode::Subscription => Ok(match policy.percent {
                BasisPoints::ZERO => ApplicationFee::None,
                rate => ApplicationFee::SubscriptionPercent(rate),
            }),
            RequestMode::Payment => {
                if policy.percent == BasisPoints::ZERO {
                    return Ok(match policy.fixed_amount {
                        0 => ApplicationFee::None,
                        fixed => ApplicationFee::Amount(fixed),
                    });
                }
                let mut unit_amounts: HashMap<&PriceId, i64> = HashMap::new();
                for item in &request.line_items {
                    if !unit_amounts.contains_key(&item.price) {
                        let price = self
                            .prices
                            .get(
                                &self.stripe,
                                &item.price,
                                Some(account),
                                "line_items",
                                self.clock.now(),
                            )
                            .await?;
                        let amount = price.unit_amount.ok_or_else(|| {
                            InvalidField::new(
                                "line_items",
                                format!("price {} has no fixed unit amount", item.price),
                            )
                        })?;
                        unit_amounts.insert(&item.price, amount);
                    }
                }
                let subtotal: i64 = request
                    .line_items
                    .iter()
                    .map(|i| unit_amounts[&i.price] * i64::from(i.quantity))
                    .sum();
                Ok(ApplicationFee::Amount(policy.fee_on(subtotal)))
            }
        }
    }
}

/// How the platform is paid on a Connect sale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplicationFee {
    None,
    /// `payment_intent_data[application_fee_amount]`, in the smallest currency unit.
    Amount(i64),
    /// `subscription_data[application_fee_percent]`.
    SubscriptionPercent(BasisPoints),
}

impl CheckoutConfig {
    /// The exact form sent to `POST /v1/checkout/sessions`.
    ///
    /// # Errors
    /// Embedded mode asked for where no return URL is configured.
    pub fn session_params(
        &self,
        request: &CreateSessionRequest,
        now: i64,
        fee: &ApplicationFee,
    ) -> Result<Form, CheckoutError> {
        let policy = self.shop.shop.checkout(request.account.as_ref());
        let mut form = Form::new();
        for (i, item) in request.line_items.iter().enumerate() {
            form.push(format!("line_items[{i}][price]"), &item.price);
            form.push(format!("line_items[{i}][quantity]"), item.quantity);
            if let Some(adjustable) = policy.adjustable(&item.price) {
                if !adjustable.range().contains(&item.quantity) {
                    let range = adjustable.range();
                    return Err(InvalidField::new(
                        format!("line_items[{i}].quantity"),
                        format!(
                            "between {} and {} for this price",
                            range.start().max(&1),
                            range.end()
                        ),
                    )
                    .into());
                }
                form.push_json(
                    &format!("line_items[{i}][adjustable_quantity]"),
                    &serde_json::to_value(adjustable).expect("serialises"),
                );
            }
        }
        form.push(
            "mode",
            match Mode::from(request.mode) {
                Mode::Payment => "payment",
                _ => "subscription",
            },
        );
        match request.ui_mode {
            RequestUiMode::Hosted => {
                form.push("ui_mode", "hosted");
                form.push("success_url", &self.success_url);
                form.push_opt("cancel_url", self.cancel_url.as_ref());
            }
            RequestUiMode::Embedded | RequestUiMode::Custom => {
                let name = if request.ui_mode == RequestUiMode::Embedded {
                    "embedded"
                } else {
                    "custom"
                };
                let return_url = self.return_url.as_ref().ok_or_else(|| {
                    InvalidField::new(
                        "ui_mode",
                        format!("{name} Checkout is not configured here (CHECKOUT_RETURN_URL)"),
                    )
                })?;
                form.push("ui_mode", name);
                form.push("return_url", return_url);
            }
        }
        form.push("expires_at", now + self.expires_after_secs);
        form.push_opt("customer", request.customer.as_ref());
        form.push_opt(
            "customer_email",
            request.customer_email.as_ref().map(EmailAddress::as_str),
        );
        form.push_opt("locale", request.locale.as_ref().map(Locale::as_str));
        form.push_opt(
            "client_reference_id",
            request
                .client_reference_id
                .as_ref()
                .map(ClientReference::as_str),
        );
        if self.collect_promotions_consent {
            form.push("consent_collection[promotions]", "auto");
        }
        if self.allow_promotion_codes {
            form.push("allow_promotion_codes", "true");
        }
        if self.recovery {
            form.push("after_expiration[recovery][enabled]", "true");
            if self.allow_promotion_codes {
                form.push("after_expiration[recovery][allow_promotion_codes]", "true");
            }
        }
        for (key, value) in request.metadata.iter() {
            form.push(format!("metadata[{key}]"), value);
        }
        let cart: Vec<&PriceId> = request.line_items.iter().map(|i| &i.price).collect();
        let kind = match request.mode {
            RequestMode::Payment => SessionKind::Payment,
            RequestMode::Subscription => SessionKind::Subscription,
        };
        policy.push_to(&mut form, kind, &cart);
        // Stripe refuses automatic tax for a Customer without an address, and tax id
        // collection for one without a name, unless Checkout may save what it collects.
        if request.customer.is_some() {
            if policy.automatic_tax.is_some_and(|t| t.enabled) {
                let what = if policy.shipping_address_collection.is_some() {
                    "customer_update[shipping]"
                } else {
                    "customer_update[address]"
                };
                form.push(what, "auto");
            }
            if policy.tax_id_collection.is_some_and(|t| t.enabled) {
                form.push("customer_update[name]", "auto");
            }
        }
        match fee {
            ApplicationFee::None => {}
            ApplicationFee::Amount(amount) => {
                form.push("payment_intent_data[application_fee_amount]", amount);
            }
            ApplicationFee::SubscriptionPercent(rate) => {
                form.push("subscription_data[application_fee_percent]", rate);
            }
        }
        Ok(form)
    }
}
