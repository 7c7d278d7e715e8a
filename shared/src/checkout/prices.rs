//! Prices as Stripe knows them, cached per process: the server-side source of every amount
//! (a PaymentIntent's total, a Connect fee), never the client. A warm Lambda asks Stripe for a
//! price at most once per `TTL_SECS`, so a burst of carts does not spend the merchant's rate
//! limit; a price changed at Stripe is seen within that time.

use std::collections::HashMap;
use std::sync::Mutex;

use super::{CheckoutError, InvalidField};
use crate::ids::{AccountId, PriceId};
use crate::stripe::{Price, StripeClient};

const TTL_SECS: i64 = 300;
/// A Lambda serves one merchant's catalog; this only bounds a pathological one.
const MAX_ENTRIES: usize = 10_000;

type Key = (Option<AccountId>, PriceId);

#[derive(Debug, Default)]
pub struct PriceCache {
    prices: Mutex<HashMap<Key, (Price, i64)>>,
}

impl PriceCache {
    /// `price` on `account`, from the cache when fresh.
    ///
    /// # Errors
    /// The price does not exist on the account (400, naming `field`), or Stripe failed.
    pub async fn get(
        &self,
        stripe: &StripeClient,
        price: &PriceId,
        account: Option<&AccountId>,
        field: &str,
        now: i64,
    ) -> Result<Price, CheckoutError> {
        let key = (account.cloned(), price.clone());
        if let Some((cached, at)) = self.lock().get(&key)
            && now - at < TTL_SECS
        {
            return Ok(cached.clone());
        }
        let fetched = stripe.retrieve_price(price, account).await.map_err(|err| {
            if err.is_not_found() {
                InvalidField::new(
                    field,
                    format!("price {price} does not exist on this account"),
                )
                .into()
            } else {
                CheckoutError::Stripe(err)
            }
        })?;
        let mut prices = self.lock();
        if prices.len() >= MAX_ENTRIES {
            prices.clear();
        }
        prices.insert(key, (fetched.clone(), now));
        Ok(fetched)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, (Price, i64)>> {
        // Plain data: a panic while holding the lock leaves nothing half-written.
        self.prices
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
