//! `POST /checkout/sessions` and `POST /payments` on API Gateway (HTTP API, payload v2). API
//! Gateway answers CORS preflights itself; the handler still refuses origins outside
//! `ALLOWED_ORIGINS`.

use checkout_core::{
    checkout::{self, CheckoutConfig, SessionCreator},
    lambda, secrets,
    store::DynamoDb,
};
use lambda_http::{Error, LambdaEvent, lambda_runtime, request::LambdaRequest, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    checkout_core::logging::init();
    let (sdk, env) = secrets::cold_start(&[
        "STRIPE_SECRET_KEY",
        "MERCHANT_API_KEY",
        "CUSTOMER_TOKEN_SECRET",
        "SHOP_POLICY",
    ])
    .await?;
    let config = CheckoutConfig::from_env(&env)?;
    let creator = &SessionCreator::new(config, DynamoDb::new(&sdk));
    // Not lambda_http::run: lambda::dispatch_http answers a payload its conversion would
    // panic on with 400 malformed_request.
    lambda_runtime::run(service_fn(move |event: LambdaEvent<LambdaRequest>| {
        lambda::dispatch_http(|request| checkout::handle(creator, request), event)
    }))
    .await
}
