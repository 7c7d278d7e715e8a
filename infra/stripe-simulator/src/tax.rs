//! A session's totals, and automatic tax as the simulator computes it: exclusive VAT by the
//! country the goods go to (the shipping address, else the billing address), France 20 %,
//! Germany 19 %, anywhere else none. Each line item and the shipping are taxed on their own,
//! rounded half up to the cent, as Stripe rounds per line. The totals are computed again
//! whenever the cart, the shipping rate or the address changes.
//!
//! Kept simple: no discounts, no tax registrations (a country without a rate lists no tax in
//! the breakdown, where Stripe would list a zero `not_collecting` one).

use checkout_core::stripe::{CheckoutSession, TotalDetails};
use serde_json::{Value, json};

use crate::{CATALOG_CREATED, SimulatorConfig, StoredSession};

/// VAT by country, in basis points.
const VAT: [(&str, &str, i32); 2] = [("FR", "France", 2000), ("DE", "Germany", 1900)];

/// The country taxed: where the goods go, else the billing address's.
fn tax_country(session: &CheckoutSession) -> Option<&str> {
    session
        .shipping()
        .and_then(|s| s.address.as_ref())
        .or_else(|| session.customer_details.as_ref()?.address.as_ref())
        .and_then(|a| a.country.as_deref())
}

/// The VAT of the session when automatic tax is on and the country has one: the country and
/// its rate in basis points.
fn vat(stored: &StoredSession) -> Option<(&'static str, &'static str, i32)> {
    if !stored.options.automatic_tax {
        return None;
    }
    let country = tax_country(&stored.session)?;
    VAT.into_iter().find(|(code, _, _)| *code == country)
}

/// Half up, in the smallest currency unit (amounts are never negative here).
fn tax_on(amount: i64, basis_points: i32) -> i64 {
    (amount * i64::from(basis_points) + 5_000) / 10_000
}

/// The tax rate object of a country's VAT: every key of Stripe's `tax_rate` fixture.
fn tax_rate_json(country: &str, name: &str, basis_points: i32) -> Value {
    let percentage = f64::from(basis_points) / 100.0;
    json!({
        "id": format!("txr_simulated_vat_{}", country.to_ascii_lowercase()),
        "object": "tax_rate",
        "active": true,
        "country": country,
        "created": CATALOG_CREATED,
        "description": format!("VAT {name}"),
        "display_name": "VAT",
        "effective_percentage": percentage,
        "flat_amount": null,
        "inclusive": false,
        "jurisdiction": country,
        "jurisdiction_level": "country",
        "livemode": false,
        "metadata": {},
        "percentage": percentage,
        "rate_type": "percentage",
        "state": null,
        "tax_type": "vat",
    })
}

/// The amounts of the session's items, shipping and tax, from its cart, its chosen rate
/// (`shipping_cost.shipping_rate`) and its address: each line item's `amount_tax` and
/// `amount_total`, `shipping_cost`, `total_details` and the session's `amount_subtotal` and
/// `amount_total` (subtotal + shipping + tax).
pub(crate) fn recompute(stored: &mut StoredSession, config: &SimulatorConfig) {
    let rate = vat(stored).map(|(_, _, bp)| bp);
    let taxed = |amount: i64| rate.map_or(0, |bp| tax_on(amount, bp));
    let mut tax = 0;
    for item in &mut stored.items {
        item.amount_tax = taxed(item.amount_subtotal);
        item.amount_total = item.amount_subtotal - item.amount_discount + item.amount_tax;
        tax += item.amount_tax;
    }
    let subtotal: i64 = stored.items.iter().map(|i| i.amount_subtotal).sum();
    let session = &mut stored.session;
    let mut shipping = 0;
    if let Some(cost) = session.shipping_cost.as_mut() {
        let chosen = cost.shipping_rate.as_ref().map(|r| r.id().to_string());
        let amount = chosen
            .and_then(|id| config.shipping_rates.iter().find(|r| r.id == id))
            .map_or(0, |r| r.amount);
        cost.amount_subtotal = amount;
        cost.amount_tax = taxed(amount);
        cost.amount_total = amount + cost.amount_tax;
        shipping = amount;
        tax += cost.amount_tax;
    }
    session.amount_subtotal = Some(subtotal);
    session.amount_total = Some(subtotal + shipping + tax);
    session.total_details = Some(TotalDetails {
        amount_discount: 0,
        amount_shipping: Some(shipping),
        amount_tax: tax,
        breakdown: None,
    });
}

/// `total_details.breakdown` (with `expand[]=total_details.breakdown`): one tax entry for the
/// country's VAT over everything taxed, and no discounts.
pub(crate) fn breakdown(stored: &StoredSession) -> Value {
    let taxes: Vec<Value> = vat(stored)
        .map(|(country, name, bp)| {
            let session = &stored.session;
            let amount = session.total_details.as_ref().map_or(0, |t| t.amount_tax);
            let shipping = session
                .shipping_cost
                .as_ref()
                .map_or(0, |c| c.amount_subtotal);
            let taxable = session.amount_subtotal.unwrap_or_default() + shipping;
            json!({
                "amount": amount,
                "rate": tax_rate_json(country, name, bp),
                "taxability_reason": "standard_rated",
                "taxable_amount": taxable,
            })
        })
        .into_iter()
        .collect();
    json!({"discounts": [], "taxes": taxes})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tax_rounds_half_up_per_amount() {
        assert_eq!(tax_on(3000, 2000), 600);
        assert_eq!(tax_on(490, 2000), 98);
        assert_eq!(tax_on(490, 1900), 93, "93.1");
        assert_eq!(tax_on(1250, 1900), 238, "237.5 rounds up");
        assert_eq!(tax_on(0, 2000), 0);
    }

    #[test]
    fn the_rate_object_has_every_key_of_stripes_fixture() {
        // The keys of Stripe's basil `tax_rate` fixture (not copied into the repository).
        let keys = [
            "active",
            "country",
            "created",
            "description",
            "display_name",
            "effective_percentage",
            "flat_amount",
            "id",
            "inclusive",
            "jurisdiction",
            "jurisdiction_level",
            "livemode",
            "metadata",
            "object",
            "percentage",
            "rate_type",
            "state",
            "tax_type",
        ];
        let rate = tax_rate_json("FR", "France", 2000);
        let mut got: Vec<&str> = rate
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        got.sort_unstable();
        assert_eq!(got, keys);
        assert_eq!(rate["percentage"], 20.0);
    }
}
