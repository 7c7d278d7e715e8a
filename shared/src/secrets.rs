//! Secrets from SSM Parameter Store, read once at cold start (and the one value the template
//! cannot pass in the environment: the recovery function's public URL, see the template).
//!
//! In AWS a function's environment holds the *name* of a SecureString parameter
//! (`STRIPE_SECRET_KEY_PARAMETER=/stripe-checkout/stripe-secret-key`), never the value: values in
//! Lambda environment variables show up in the console, in `GetFunctionConfiguration` and in
//! CloudFormation. [`resolve`] fetches every named parameter in one decrypted `GetParameters`
//! call and layers the values over the environment, so the typed configs read
//! `STRIPE_SECRET_KEY` the same way in Lambda, in the local stack and in tests. The values live
//! in memory for the life of the execution environment: no call per invocation.
//!
//! Hand-written rather than the Parameters and Secrets Lambda Extension: the extension is a
//! layer with a per-region ARN and a localhost HTTP hop, for what is one SDK call per cold start.

use std::collections::HashMap;

use aws_sdk_ssm::Client;

use crate::aws;
use crate::config::{Layered, ProcessEnv, Source};

/// The suffix naming the parameter that holds a secret variable's value.
pub const PARAMETER_SUFFIX: &str = "_PARAMETER";

/// `GetParameters` takes at most 10 names per call.
const MAX_NAMES_PER_CALL: usize = 10;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("{var}: SSM parameter {parameter} does not exist (or the function may not read it)")]
    NotFound { var: String, parameter: String },
    #[error("{var}: SSM parameter {parameter} is empty")]
    Empty { var: String, parameter: String },
    #[error("reading SSM parameters failed: {0}")]
    Ssm(String),
}

/// Every function's cold start: the bundle's AWS SDK configuration, and the process
/// environment with the secrets among `vars` read from SSM (see [`resolve`]).
///
/// # Errors
/// As [`resolve`].
pub async fn cold_start(
    vars: &[&'static str],
) -> Result<(aws::SdkConfig, Layered<ProcessEnv>), SecretError> {
    let sdk = aws::sdk_config().await;
    let env = resolve(&Client::new(&sdk), ProcessEnv, vars).await?;
    Ok((sdk, env))
}

/// Resolves each of `vars` whose `<VAR>_PARAMETER` is set; the others keep their plain
/// environment value (local stack, tests), which the configs then require as usual.
///
/// # Errors
/// A named parameter does not exist, is empty, or SSM cannot be read.
pub async fn resolve<S: Source>(
    ssm: &Client,
    env: S,
    vars: &[&'static str],
) -> Result<Layered<S>, SecretError> {
    let wanted: Vec<(&'static str, String)> = vars
        .iter()
        .filter_map(|var| {
            let parameter = env.get(&format!("{var}{PARAMETER_SUFFIX}"))?;
            let parameter = parameter.trim();
            (!parameter.is_empty()).then(|| (*var, parameter.to_string()))
        })
        .collect();
    let mut values: HashMap<String, String> = HashMap::new();
    for chunk in wanted.chunks(MAX_NAMES_PER_CALL) {
        let output = ssm
            .get_parameters()
            .set_names(Some(chunk.iter().map(|(_, p)| p.clone()).collect()))
            .with_decryption(true)
            .send()
            .await
            .map_err(|err| {
                SecretError::Ssm(aws_sdk_ssm::error::DisplayErrorContext(err).to_string())
            })?;
        for parameter in output.parameters.unwrap_or_default() {
            if let (Some(name), Some(value)) = (parameter.name, parameter.value) {
                values.insert(name, value);
            }
        }
    }
    let mut secrets = HashMap::new();
    for (var, parameter) in wanted {
        let Some(value) = values.remove(&parameter) else {
            return Err(SecretError::NotFound {
                var: var.into(),
                parameter,
            });
        };
        // Values pasted into the console often end in a newline.
        let value = value.trim().to_string();
        if value.is_empty() {
            return Err(SecretError::Empty {
                var: var.into(),
                parameter,
            });
        }
        secrets.insert(var, value);
    }
    if !secrets.is_empty() {
        let names: Vec<&str> = secrets.keys().copied().collect();
        tracing::info!(?names, "secrets read from Parameter Store");
    }
    Ok(Layered::new(env, secrets))
}
