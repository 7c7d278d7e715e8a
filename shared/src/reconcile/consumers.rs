//! The stream consumers with their default wiring, built the way their own functions build
//! them, for what runs them besides the stream (the reconcile function, `ops`, the local
//! stack): a re-drive must run the consumers' own code with their own configuration.

use std::future::Future;

use crate::access::{AccessTable, Entitle};
use crate::config::{ConfigError, Source};
use crate::fulfillment::{
    self, ConfirmationConfig, ConfirmationEmail, Fulfil, FulfillmentApp, FulfillmentConfig,
};
use crate::mail::{Mailer, SesMailer};
use crate::recovery::{Recovery, RecoveryConfig};
use crate::store::{Consumer, DynamoDb, EventOutcome, EventRecord};
use crate::subscriptions::{self, Subscriptions, SubscriptionsConfig};

/// What a re-drive runs: each consumer's own handler on one event.
pub trait Drive: Sync {
    /// `Ok` holds the outcome recorded (final or not); `Err` an unfinished event's error.
    fn run(
        &self,
        consumer: Consumer,
        event: &EventRecord,
        deadline: Option<i64>,
    ) -> impl Future<Output = Result<EventOutcome, String>> + Send;
}

/// The three consumers' handlers, however each is built.
pub struct Handlers<'a, F, M, E> {
    pub fulfillment: &'a FulfillmentApp<F, E>,
    pub recovery: &'a Recovery<M>,
    pub subscriptions: &'a Subscriptions<E>,
}

impl<F: Fulfil, M: Mailer, E: Entitle> Drive for Handlers<'_, F, M, E> {
    async fn run(
        &self,
        consumer: Consumer,
        event: &EventRecord,
        deadline: Option<i64>,
    ) -> Result<EventOutcome, String> {
        match consumer {
            Consumer::Fulfillment => {
                fulfillment::handle_event(&self.fulfillment.fulfillment, event, deadline)
                    .await
                    .map_err(|e| e.to_string())
            }
            Consumer::Recovery => self
                .recovery
                .handle_event(event)
                .await
                .map_err(|e| e.to_string()),
            Consumer::Subscriptions => {
                subscriptions::handle_event(self.subscriptions, event, deadline)
                    .await
                    .map_err(|e| e.to_string())
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct ConsumersConfig {
    pub fulfillment: FulfillmentConfig,
    pub confirmation: ConfirmationConfig,
    pub recovery: RecoveryConfig,
    pub subscriptions: SubscriptionsConfig,
}

impl ConsumersConfig {
    /// # Errors
    /// A missing or invalid variable of any consumer, named.
    pub fn from_env(env: &impl Source) -> Result<Self, ConfigError> {
        Ok(Self {
            fulfillment: FulfillmentConfig::from_env(env)?,
            confirmation: ConfirmationConfig::from_env(env)?,
            recovery: RecoveryConfig::from_env(env)?,
            subscriptions: SubscriptionsConfig::from_env(env)?,
        })
    }
}

/// The consumers with the bundle's defaults: confirmation emails, the access table. `F` is
/// the fulfilment, the confirmation email unless `with_fulfiller` wraps it (the storm's
/// counting fulfiller does).
pub struct Consumers<F = ConfirmationEmail<SesMailer>> {
    pub fulfillment: FulfillmentApp<F, AccessTable>,
    pub recovery: Recovery<SesMailer>,
    pub subscriptions: Subscriptions<AccessTable>,
}

impl Consumers {
    #[must_use]
    pub fn new(config: ConsumersConfig, dynamodb: &DynamoDb, ses: &aws_sdk_sesv2::Client) -> Self {
        Self::with_fulfiller(config, dynamodb, ses, |confirmation| confirmation)
    }
}

impl<F: Fulfil> Consumers<F> {
    /// The same consumers, with the confirmation email handed to `wrap` to make the
    /// fulfilment (a merchant's own `Fulfil` around it, or one that counts its calls).
    #[must_use]
    pub fn with_fulfiller(
        config: ConsumersConfig,
        dynamodb: &DynamoDb,
        ses: &aws_sdk_sesv2::Client,
        wrap: impl FnOnce(ConfirmationEmail<SesMailer>) -> F,
    ) -> Self {
        let confirmation_mailer = config
            .confirmation
            .mail
            .clone()
            .map(|mail| SesMailer::new(mail, ses.clone()));
        let recovery_mailer = SesMailer::new(config.recovery.mail.clone(), ses.clone());
        let access = AccessTable::new(config.subscriptions.access.clone(), dynamodb.clone());
        Self {
            fulfillment: FulfillmentApp::new(
                config.fulfillment,
                dynamodb.clone(),
                wrap(ConfirmationEmail::new(
                    config.confirmation,
                    confirmation_mailer,
                )),
                access.clone(),
            ),
            recovery: Recovery::new(config.recovery, dynamodb.clone(), recovery_mailer),
            subscriptions: Subscriptions::new(config.subscriptions, dynamodb.clone(), access),
        }
    }

    /// The handlers a re-drive runs.
    #[must_use]
    pub fn handlers(&self) -> Handlers<'_, F, SesMailer, AccessTable> {
        Handlers {
            fulfillment: &self.fulfillment,
            recovery: &self.recovery,
            subscriptions: &self.subscriptions,
        }
    }
}
