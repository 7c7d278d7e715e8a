//! `POST /checkout/sessions` (and `OPTIONS` for CORS) on API Gateway (HTTP API, payload v2).

use checkout_core::{
    aws,
    checkout::{self, CheckoutConfig, SessionCreator},
    config::ProcessEnv,
    store::DynamoDb,
};
use lambda_http::{Error, Request, service_fn, tracing};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let config = CheckoutConfig::from_env(&ProcessEnv)?;
    let dynamodb = DynamoDb::new(&aws::sdk_config().await);
    let creator = &SessionCreator::from_config(config, dynamodb);
    lambda_http::run(service_fn(move |request: Request| async move {
        Ok::<_, Error>(checkout::handle(creator, request).await)
    }))
    .await
}
