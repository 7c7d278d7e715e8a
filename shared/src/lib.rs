//! The bundle's common crate: everything the Lambda functions share, by domain concept.
//!
//! The function crates under `functions/` only wire configuration and clients to the
//! handlers built from these pieces, so the local stack and the tests run the same code
//! the Lambda binaries run.
//!
//! Modules stack in three layers, and each imports only from the layers below it (and
//! `lambda`, `aws`, `secrets`, `metrics` from none above their own):
//!
//! 1. Values: `ids`, `clock`, `money`, `config`. Types that parse, and nothing else.
//! 2. Adapters to the outside: `http` (errors as HTTP answers; knows no domain), `stripe`
//!    (the API client, Stripe's objects and events), `store` (DynamoDB tables), `mail`
//!    (addresses, templates, SES), `access` (the `Entitle` seam and its default table),
//!    `stock` (the `Stock` seam, limited stock, and its default table), `shop` (the
//!    merchant's shop document: Checkout options and per-account profiles),
//!    `callers` (server calls by API key, customer tokens), `pages` (the customer pages'
//!    stylesheet, favicon, HTML escaping),
//!    `lambda` (triggers), `aws`, `secrets`, `metrics`.
//! 3. Domain, one per concept, which never import each other: `webhook`, `checkout`,
//!    `fulfillment`, `subscriptions`, `recovery`.
//!
//! Every error type implements `http::ApiError` beside its definition, and every service
//! and store is built the same way: `XConfig::from_env(&env)`, then `X::new(config,
//! clients…)`.

// Values.
pub mod clock;
pub mod config;
pub mod ids;
pub mod money;

// Adapters.
pub mod access;
pub mod aws;
pub mod callers;
pub mod http;
pub mod lambda;
pub mod logging;
pub mod mail;
pub mod metrics;
pub mod pages;
pub mod secrets;
pub mod shop;
pub mod stock;
pub mod store;
pub mod stripe;
pub mod tls;

// Domain.
pub mod checkout;
pub mod fulfillment;
pub mod recovery;
pub mod subscriptions;
pub mod webhook;

// Operations: drives the domain modules above.
pub mod reconcile;
