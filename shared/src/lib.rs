//! The bundle's common crate: everything the Lambda functions share, by domain concept.
//!
//! The function crates under `functions/` only wire configuration and clients to the
//! handlers built from these pieces, so the local stack and the tests run the same code
//! the Lambda binaries run.

pub mod aws;
pub mod checkout;
pub mod config;
pub mod events;
pub mod fulfillment;
pub mod http;
pub mod ids;
pub mod lambda;
pub mod mail;
pub mod metrics;
pub mod recovery;
pub mod secrets;
pub mod store;
pub mod stripe;
pub mod webhook;
