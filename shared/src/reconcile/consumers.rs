//! The two stream consumers with their default SES wiring, built the way their own functions
//! build them, for what runs them besides the stream (the reconcile function, `ops`, the
//! local stack): a re-drive must run the consumers' own code with their own configuration.

use crate::config::{ConfigError, Source};
use crate::fulfillment::{
    ConfirmationConfig, ConfirmationEmail, FulfillmentApp, FulfillmentConfig,
};
use crate::mail::SesMailer;
use crate::recovery::{Recovery, RecoveryConfig};
use crate::store::DynamoDb;

#[derive(Debug, Clone)]
pub struct ConsumersConfig {
    pub fulfillment: FulfillmentConfig,
    pub confirmation: ConfirmationConfig,
    pub recovery: RecoveryConfig,
}

impl ConsumersConfig {
    /// # Errors
    /// A missing or invalid variable of either consumer, named.
    pub fn from_env(env: &impl Source) -> Result<Self, ConfigError> {
        Ok(Self {
            fulfillment: FulfillmentConfig::from_env(env)?,
            confirmation: ConfirmationConfig::from_env(env)?,
            recovery: RecoveryConfig::from_env(env)?,
        })
    }
}

pub struct Consumers {
    pub fulfillment: FulfillmentApp<ConfirmationEmail<SesMailer>>,
    pub recovery: Recovery<SesMailer>,
}

impl Consumers {
    #[must_use]
    pub fn new(config: ConsumersConfig, dynamodb: &DynamoDb, ses: &aws_sdk_sesv2::Client) -> Self {
        let confirmation_mailer = config
            .confirmation
            .mail
            .clone()
            .map(|mail| SesMailer::new(mail, ses.clone()));
        let recovery_mailer = SesMailer::new(config.recovery.mail.clone(), ses.clone());
        Self {
            fulfillment: FulfillmentApp::new(
                config.fulfillment,
                dynamodb.clone(),
                ConfirmationEmail::new(config.confirmation, confirmation_mailer),
            ),
            recovery: Recovery::new(config.recovery, dynamodb.clone(), recovery_mailer),
        }
    }
}
