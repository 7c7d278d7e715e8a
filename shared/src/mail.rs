//! Email: addresses, editable templates, and sending through Amazon SES v2.
//!
//! `Mailer` is a real seam: SES in production, and whatever a merchant prefers (or a test
//! double of their own) behind the same trait. Messages are built as raw MIME so custom
//! headers (`List-Unsubscribe`) reach the recipient the same way with SES and with moto.

use std::future::Future;

use aws_sdk_sesv2::primitives::Blob;
use aws_sdk_sesv2::types::{EmailContent, RawMessage};
use mail_builder::MessageBuilder;
use mail_builder::headers::raw::Raw;
use sha2::{Digest, Sha256};

use crate::config::{self, ConfigError, Source};

/// An email address of plausible shape; SES does the rest. Header injection (CR/LF, commas,
/// angle brackets) is impossible by construction.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EmailAddress(String);

impl TryFrom<String> for EmailAddress {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        let value = value.trim().to_string();
        let ok = value.len() <= 254
            && value.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty()
                    && local.len() <= 64
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
                    && !domain.contains("..")
            })
            && !value.chars().any(|c| {
                c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',' | ';' | '"')
            })
            && value.matches('@').count() == 1;
        if ok {
            Ok(Self(value))
        } else {
            Err("not a valid email address".into())
        }
    }
}

impl std::str::FromStr for EmailAddress {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::try_from(s.to_string())
    }
}

impl From<EmailAddress> for String {
    fn from(email: EmailAddress) -> Self {
        email.0
    }
}

impl EmailAddress {
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// SHA-256 of the lower-cased address: the form used in keys and logs, where the address
    /// itself need not be readable.
    #[must_use]
    pub fn hashed(&self) -> String {
        hex::encode(Sha256::digest(self.0.to_lowercase().as_bytes()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    /// The From header: the sender the email was rendered for (`Templates::render`).
    pub from_name: String,
    pub from_address: EmailAddress,
    pub to: EmailAddress,
    pub subject: String,
    pub html: String,
    pub text: String,
    /// Extra headers, e.g. `List-Unsubscribe`.
    pub headers: Vec<(&'static str, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The provider refused this message for good (unverified sender, bad address).
    #[error("the message was rejected: {0}")]
    Rejected(String),
    /// The provider answered that it did not take the message; worth retrying later.
    #[error("the mail service is unavailable: {0}")]
    Unavailable(String),
    /// No answer (timeout, connection lost): the message may or may not have been sent.
    ///
    /// The bundle's one policy for this, on every email path (order confirmation, recovery,
    /// payment-failed notice): an unknown outcome counts as sent. The email is never sent
    /// again (a customer who gets two confirmations or two reminders trusts the shop less
    /// than one who, rarely, gets none), the outcome is recorded (`unknown` on the order,
    /// the claim kept for recovery and notices) and counted (`EmailOutcomeUnknown`), so an
    /// operator can check SES's sending records.
    #[error("the mail service did not answer; the message may have been sent: {0}")]
    Unknown(String),
}

/// What became of an email the bundle meant to send, as recorded on the order.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum EmailStatus {
    Sent {
        message_id: String,
    },
    /// Deliberately not sent (emails off, no address).
    NotSent {
        reason: String,
    },
    /// Refused for good by the provider; never retried.
    Failed {
        reason: String,
    },
    /// No answer: counted as sent, never resent (see `MailError::Unknown`).
    Unknown {
        detail: String,
    },
}

/// Sends one email and returns the provider's message id.
pub trait Mailer: Send + Sync {
    fn send(&self, email: &Email) -> impl Future<Output = Result<String, MailError>> + Send;
}

/// The configured sender (`MAIL_FROM`, `MERCHANT_NAME`): every email's, unless a shop
/// profile names another (`Sender`).
#[derive(Debug, Clone)]
pub struct MailConfig {
    pub from_address: EmailAddress,
    pub from_name: String,
    pub configuration_set: Option<String>,
}

impl MailConfig {
    /// # Errors
    /// A missing or invalid variable, named.
    pub fn from_env(env: &impl Source) -> Result<Self, ConfigError> {
        let var = "MAIL_FROM";
        let from_address = config::required(env, var)?
            .parse()
            .map_err(|reason| ConfigError::Invalid { var, reason })?;
        Ok(Self {
            from_address,
            from_name: config::required(env, "MERCHANT_NAME")?,
            configuration_set: config::optional(env, "SES_CONFIGURATION_SET"),
        })
    }
}

/// Who an email is from and whose shop it speaks for: the From header, the shop's name in
/// the text, the postal address in the footer, the link to the shop.
///
/// A connected merchant's customers hear from the shop they bought from: the domain modules
/// resolve one per email from the shop document's profile of the email's account (or the
/// platform's), else the configuration. `mail` does not read the shop document, so a
/// profile arrives here as plain values (`Sender::profile`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sender {
    pub from_address: EmailAddress,
    /// The From header's display name.
    pub from_name: String,
    /// The name the text calls the shop by.
    pub shop_name: String,
    /// The footer's postal address; `None` prints none.
    pub postal_address: Option<String>,
    /// Where the emails link to the shop; `None` links nowhere.
    pub shop_url: Option<String>,
}

impl Sender {
    /// The configured sender: `MAIL_FROM` and `MERCHANT_NAME` (`mail`), with the name, postal
    /// address and shop URL the calling function's configuration has.
    #[must_use]
    pub fn configured(
        mail: &MailConfig,
        shop_name: &str,
        postal_address: Option<&str>,
        shop_url: Option<&str>,
    ) -> Self {
        Self {
            from_address: mail.from_address.clone(),
            from_name: mail.from_name.clone(),
            shop_name: shop_name.to_string(),
            postal_address: postal_address.map(str::to_string),
            shop_url: shop_url.map(str::to_string),
        }
    }

    /// A shop profile's sender. A profile is a whole identity: its URL or none, never the
    /// configuration's (a connected merchant's customers must not be sent to the platform's
    /// shop).
    #[must_use]
    pub fn profile(
        name: &str,
        email_from: &EmailAddress,
        postal_address: &str,
        url: Option<&str>,
    ) -> Self {
        Self {
            from_address: email_from.clone(),
            from_name: name.to_string(),
            shop_name: name.to_string(),
            postal_address: Some(postal_address.to_string()),
            shop_url: url.map(str::to_string),
        }
    }
}

/// Sends through SES v2. Each email carries its own From (`Email::from_*`, the resolved
/// `Sender`); `config` gives the configuration set.
pub struct SesMailer {
    client: aws_sdk_sesv2::Client,
    config: MailConfig,
}

impl SesMailer {
    #[must_use]
    pub fn new(config: MailConfig, client: aws_sdk_sesv2::Client) -> Self {
        Self { client, config }
    }

    fn mime(&self, email: &Email) -> Result<Vec<u8>, MailError> {
        let mut message = MessageBuilder::new()
            .from((email.from_name.as_str(), email.from_address.as_str()))
            .to(email.to.as_str())
            .subject(email.subject.as_str())
            .text_body(email.text.as_str())
            .html_body(email.html.as_str());
        for (name, value) in &email.headers {
            message = message.header(*name, Raw::new(value.as_str()));
        }
        message
            .write_to_vec()
            .map_err(|e| MailError::Rejected(e.to_string()))
    }
}

impl Mailer for SesMailer {
    async fn send(&self, email: &Email) -> Result<String, MailError> {
        let raw = RawMessage::builder()
            .data(Blob::new(self.mime(email)?))
            .build()
            .map_err(|e| MailError::Rejected(e.to_string()))?;
        let output = self
            .client
            .send_email()
            .content(EmailContent::builder().raw(raw).build())
            .set_configuration_set_name(self.config.configuration_set.clone())
            // One attempt: SendEmail has no idempotency key, so the SDK's retry after an
            // unanswered attempt (SES took the message, the answer was lost) would send it a
            // second time, against the "unknown counts as sent" policy above. A throttle or
            // 5xx comes back as `Unavailable`, and the consumer's own retry owns it (the
            // claim is released, the stream or the reconciler delivers again).
            .customize()
            .config_override(
                aws_sdk_sesv2::config::Builder::default()
                    .retry_config(aws_sdk_sesv2::config::retry::RetryConfig::disabled()),
            )
            .send()
            .await
            .map_err(|err| {
                let permanent = err.as_service_error().is_some_and(|e| {
                    e.is_message_rejected()
                        || e.is_mail_from_domain_not_verified_exception()
                        || e.is_bad_request_exception()
                });
                let answered = err.as_service_error().is_some()
                    || matches!(err, aws_sdk_sesv2::error::SdkError::ConstructionFailure(_));
                let detail = aws_sdk_sesv2::error::DisplayErrorContext(&err).to_string();
                if permanent {
                    MailError::Rejected(detail)
                } else if answered {
                    MailError::Unavailable(detail)
                } else {
                    MailError::Unknown(detail)
                }
            })?;
        Ok(output.message_id.unwrap_or_default())
    }
}

/// The bundle's email templates: minijinja, HTML auto-escaped (names ending `.html`), plain
/// text alongside. The defaults in `shared/templates/` are compiled in; a merchant edits those
/// files, or points `MAIL_TEMPLATES_DIR` at a folder with the same names to override them.
/// Compiled once at cold start (a template that does not compile fails the start); clones
/// share it.
#[derive(Clone)]
pub struct Templates {
    env: std::sync::Arc<minijinja::Environment<'static>>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.env.templates().map(|(name, _)| name))
            .finish()
    }
}

/// `(name, source)` of each file in `shared/templates`, compiled in.
macro_rules! compiled_templates {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../templates/", $name)))),*]
    };
}

const DEFAULT_TEMPLATES: &[(&str, &str)] = compiled_templates![
    "email_layout.html",
    "confirmation.subject.txt",
    "confirmation.html",
    "confirmation.txt",
    "recovery.en.subject.txt",
    "recovery.en.html",
    "recovery.en.txt",
    "recovery.fr.subject.txt",
    "recovery.fr.html",
    "recovery.fr.txt",
    "payment_failed.en.subject.txt",
    "payment_failed.en.html",
    "payment_failed.en.txt",
    "payment_failed.fr.subject.txt",
    "payment_failed.fr.html",
    "payment_failed.fr.txt",
    "renewal_failed.en.subject.txt",
    "renewal_failed.en.html",
    "renewal_failed.en.txt",
    "renewal_failed.fr.subject.txt",
    "renewal_failed.fr.html",
    "renewal_failed.fr.txt",
    "renewal_action_required.en.subject.txt",
    "renewal_action_required.en.html",
    "renewal_action_required.en.txt",
    "renewal_action_required.fr.subject.txt",
    "renewal_action_required.fr.html",
    "renewal_action_required.fr.txt",
    "payment_pending.en.subject.txt",
    "payment_pending.en.html",
    "payment_pending.en.txt",
    "payment_pending.fr.subject.txt",
    "payment_pending.fr.html",
    "payment_pending.fr.txt",
    "payment_retry.en.subject.txt",
    "payment_retry.en.html",
    "payment_retry.en.txt",
    "payment_retry.fr.subject.txt",
    "payment_retry.fr.html",
    "payment_retry.fr.txt",
];

impl Templates {
    /// # Errors
    /// `MAIL_TEMPLATES_DIR` names a file that cannot be read, or a template does not compile.
    pub fn from_env(env: &impl Source) -> Result<Self, ConfigError> {
        let var = "MAIL_TEMPLATES_DIR";
        let dir = config::optional(env, var);
        let mut jinja = minijinja::Environment::new();
        for (name, default) in DEFAULT_TEMPLATES {
            let source = match &dir {
                None => default.to_string(),
                Some(dir) => match std::fs::read_to_string(std::path::Path::new(dir).join(name)) {
                    Ok(text) => text,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => default.to_string(),
                    Err(e) => {
                        return Err(ConfigError::Invalid {
                            var,
                            reason: format!("{name}: {e}"),
                        });
                    }
                },
            };
            jinja
                .add_template_owned(*name, source)
                .map_err(|e| ConfigError::Invalid {
                    var,
                    reason: format!("{name}: {e}"),
                })?;
        }
        Ok(Self {
            env: std::sync::Arc::new(jinja),
        })
    }

    /// Renders `{kind}.subject.txt`, `{kind}.html` and `{kind}.txt` with `context`, from
    /// `sender`. Every template also gets the sender's `merchant_name`, `postal_address` and
    /// `shop_url`, over any of `context`'s, so no email can name one shop and come from another.
    ///
    /// # Errors
    /// No such template, or the context does not fit it.
    pub fn render(
        &self,
        kind: &str,
        sender: &Sender,
        to: EmailAddress,
        context: impl serde::Serialize,
    ) -> Result<Email, minijinja::Error> {
        let context = minijinja::context! {
            merchant_name => sender.shop_name.as_str(),
            postal_address => sender.postal_address.as_deref(),
            shop_url => sender.shop_url.as_deref(),
            ..minijinja::Value::from(minijinja::value::Serde(context))
        };
        let render = |suffix: &str| {
            self.env
                .get_template(&format!("{kind}.{suffix}"))?
                .render(&context)
        };
        Ok(Email {
            from_name: sender.from_name.clone(),
            from_address: sender.from_address.clone(),
            to,
            subject: render("subject.txt")?.trim().to_string(),
            html: render("html")?,
            text: render("txt")?,
            headers: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_addresses() {
        for ok in ["a@b.co", "jenny.rosen+tag@example.com"] {
            assert!(EmailAddress::try_from(ok.to_string()).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "a",
            "a@b",
            "@b.co",
            "a@.co",
            "a@b.co.",
            "a b@c.co",
            "a@b..co",
            "a@b@c.co",
            "<a@b.co>",
            "a@b.co\r\nBcc: x@y.z",
        ] {
            assert!(EmailAddress::try_from(bad.to_string()).is_err(), "{bad}");
        }
    }

    fn sender(name: &str, address: &str) -> Sender {
        Sender::profile(
            name,
            &address.parse().unwrap(),
            "1 rue de la Paix, 75002 Paris",
            Some("https://comptoir.example"),
        )
    }

    #[test]
    fn an_email_names_and_comes_from_its_sender_whatever_its_context_says() {
        let templates = Templates::from_env(&[("UNUSED", "")]).unwrap();
        let email = templates
            .render(
                "payment_failed.en",
                &sender("Le Comptoir", "orders@comptoir.example"),
                "jenny@example.com".parse().unwrap(),
                serde_json::json!({"merchant_name": "Platform", "postal_address": "1 Main St"}),
            )
            .unwrap();
        assert_eq!(email.from_name, "Le Comptoir");
        assert_eq!(email.from_address.as_str(), "orders@comptoir.example");
        assert_eq!(
            email.subject,
            "Le Comptoir: your payment did not go through"
        );
        assert!(email.text.contains("1 rue de la Paix, 75002 Paris"));
        assert!(email.text.contains("https://comptoir.example"));
        assert!(!email.text.contains("Platform") && !email.text.contains("1 Main St"));
    }

    #[test]
    fn the_message_goes_out_from_the_emails_sender_not_the_configured_one() {
        let config = MailConfig {
            from_address: "hello@platform.example".parse().unwrap(),
            from_name: "Platform".into(),
            configuration_set: None,
        };
        let client = aws_sdk_sesv2::Client::from_conf(
            aws_sdk_sesv2::Config::builder()
                .behavior_version(aws_sdk_sesv2::config::BehaviorVersion::latest())
                .build(),
        );
        let mailer = SesMailer::new(config, client);
        let templates = Templates::from_env(&[("UNUSED", "")]).unwrap();
        let email = templates
            .render(
                "payment_failed.en",
                &sender("Le Comptoir", "orders@comptoir.example"),
                "jenny@example.com".parse().unwrap(),
                serde_json::json!({}),
            )
            .unwrap();
        let mime = String::from_utf8(mailer.mime(&email).unwrap()).unwrap();
        let from = mime
            .lines()
            .find(|l| l.starts_with("From: "))
            .expect("a From header");
        assert_eq!(from, "From: \"Le Comptoir\" <orders@comptoir.example>");
    }

    #[test]
    fn hashes_ignore_case() {
        let a: EmailAddress = "Jenny@Example.com".parse().unwrap();
        let b: EmailAddress = "jenny@example.com".parse().unwrap();
        assert_eq!(a.hashed(), b.hashed());
        assert_eq!(a.hashed().len(), 64);
        assert!(!a.hashed().contains("jenny"));
    }
}
