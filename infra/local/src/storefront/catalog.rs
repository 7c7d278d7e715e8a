//! What each product card says beyond its name and price: what the shop policy
//! (`SHOP_POLICY_FILE`, docs/shop.md) means for it (where it ships, the tax, the quantity it
//! can be bought in, the add-ons offered with it), and, for a price with a stock level
//! (`STOCK_TABLE`), how many are left.

use std::sync::Arc;

use checkout_core::config::{ConfigError, ProcessEnv};
use checkout_core::ids::PriceId;
use checkout_core::shop::{CheckoutPolicy, Shop, ShopConfig};
use checkout_core::stock::{StockConfig, StockTable};
use checkout_core::store::DynamoDb;
use serde::Serialize;

use super::Product;

/// The storefront's quantity field goes up to this, as the simulator's catalog is small.
const MAX_QUANTITY: i64 = 10;

/// The shop document and the stock table the bundle's functions use.
pub(super) struct Catalog {
    shop: Arc<Shop>,
    stock: Option<StockTable>,
}

/// A product as its card shows it.
#[derive(Debug, Serialize)]
pub(super) struct ProductView<'a> {
    #[serde(flatten)]
    product: &'a Product,
    /// What the shop policy means for this product, one sentence each.
    terms: Vec<String>,
    /// Units left, when the price has a stock level.
    left: Option<i64>,
    out_of_stock: bool,
    /// The most the quantity field offers: what is left, up to [`MAX_QUANTITY`].
    max_quantity: i64,
}

impl Catalog {
    /// From the variables the functions read (`SHOP_POLICY_FILE` or `SHOP_POLICY`,
    /// `STOCK_TABLE`); the stack has already refused to start on an invalid one.
    pub(super) fn from_env(dynamodb: &DynamoDb) -> Self {
        let warn = |err: &ConfigError| {
            tracing::warn!(error = %err, "storefront: product cards shown without it");
        };
        let shop = ShopConfig::from_env(&ProcessEnv)
            .map(|config| config.shop)
            .unwrap_or_else(|err| {
                warn(&err);
                Arc::default()
            });
        let stock = match StockConfig::from_env(&ProcessEnv) {
            Ok(config) => config.table,
            Err(err) => {
                warn(&err);
                None
            }
        }
        .map(|table| StockTable::new(table, dynamodb.clone()));
        Self { shop, stock }
    }

    #[cfg(test)]
    pub(super) fn new(shop: Shop) -> Self {
        Self {
            shop: Arc::new(shop),
            stock: None,
        }
    }

    /// Every product with its terms and, read now, its stock.
    pub(super) async fn views<'a>(&self, products: &'a [Product]) -> Vec<ProductView<'a>> {
        let policy = self.shop.checkout(None);
        let mut views = Vec::with_capacity(products.len());
        for product in products {
            let left = self.left(&product.price).await;
            views.push(ProductView {
                product,
                terms: terms(policy, product, products),
                left,
                out_of_stock: left.is_some_and(|n| n <= 0),
                max_quantity: left.map_or(MAX_QUANTITY, |n| n.clamp(1, MAX_QUANTITY)),
            });
        }
        views
    }

    /// The units left of `price`; `None` when untracked (or unreadable: the button stays,
    /// and create-session still refuses a cart the stock cannot serve).
    async fn left(&self, price: &str) -> Option<i64> {
        let stock = self.stock.as_ref()?;
        let price: PriceId = price.parse().ok()?;
        match stock.level(None, &price).await {
            Ok(level) => level,
            Err(err) => {
                tracing::warn!(error = %err, price = price.as_str(), "stock level unreadable");
                None
            }
        }
    }
}

/// What the policy means for `product`, in the words of its card.
fn terms(policy: &CheckoutPolicy, product: &Product, products: &[Product]) -> Vec<String> {
    let subscription = product.recurring.is_some();
    let mut terms = Vec::new();
    if let Some(collection) = &policy.shipping_address_collection {
        let countries = collection
            .allowed_countries
            .iter()
            .map(|c| String::from(c.clone()))
            .collect::<Vec<_>>()
            .join(", ");
        terms.push(match policy.shipping_options.len() {
            // Stripe offers no shipping rates in subscription mode.
            _ if subscription => format!("Ships to {countries}, no shipping rate"),
            0 => format!("Ships to {countries}"),
            1 => format!("Ships to {countries}, one shipping rate"),
            n => format!("Ships to {countries}, {n} shipping rates"),
        });
    }
    if policy.automatic_tax.as_ref().is_some_and(|t| t.enabled) {
        terms.push("VAT added at checkout".into());
    }
    let price = product.price.parse::<PriceId>().ok();
    if let Some(adjustable) = price
        .as_ref()
        .and_then(|p| policy.adjustable_quantity.get(p))
        .filter(|a| a.enabled)
    {
        let range = adjustable.range();
        terms.push(format!(
            "Quantity {} to {}, changeable at checkout",
            range.start().max(&1),
            range.end()
        ));
    }
    let name_of = |price: &PriceId| {
        products
            .iter()
            .find(|p| p.price == price.as_str())
            .map_or_else(|| price.as_str().to_string(), |p| p.name.clone())
    };
    let (this, others): (Vec<_>, Vec<_>) = policy
        .optional_items
        .iter()
        .partition(|item| Some(&item.price) == price.as_ref());
    if !this.is_empty() {
        terms.push("Offered as an add-on to the other products".into());
    }
    if !others.is_empty() {
        let names: Vec<String> = others.iter().map(|item| name_of(&item.price)).collect();
        terms.push(format!("{} offered as an add-on", names.join(", ")));
    }
    if policy.consent_collection.is_some() {
        terms.push("Terms of sale to accept".into());
    }
    terms
}

#[cfg(test)]
mod tests {
    use super::*;

    fn product(price: &str, name: &str, recurring: Option<&str>) -> Product {
        Product {
            price: price.into(),
            name: name.into(),
            amount: String::new(),
            recurring: recurring.map(str::to_string),
        }
    }

    #[test]
    fn the_demo_policy_reads_as_each_products_terms() {
        let shop = Shop::parse(include_str!("../../../../examples/shop-policy.json"))
            .expect("the example policy parses");
        let products = [
            product("price_mug", "Mug", None),
            product("price_tea", "Tea box", None),
            product("price_plan", "Pro plan", Some("month")),
        ];
        let policy = shop.checkout(None);
        assert_eq!(
            terms(policy, &products[0], &products),
            [
                "Ships to FR, DE, BE, 2 shipping rates",
                "VAT added at checkout",
                "Quantity 1 to 10, changeable at checkout",
                "Tea box offered as an add-on",
                "Terms of sale to accept",
            ]
        );
        let tea = terms(policy, &products[1], &products);
        assert!(tea.contains(&"Offered as an add-on to the other products".to_string()));
        assert!(!tea.iter().any(|t| t.starts_with("Quantity")), "{tea:?}");
        assert_eq!(
            terms(policy, &products[2], &products)[0],
            "Ships to FR, DE, BE, no shipping rate"
        );
    }

    #[test]
    fn no_policy_no_terms() {
        let mug = product("price_mug", "Mug", None);
        assert!(terms(&CheckoutPolicy::default(), &mug, std::slice::from_ref(&mug)).is_empty());
    }

    #[tokio::test]
    async fn untracked_products_have_no_stock_line_and_the_usual_quantity() {
        let catalog = Catalog::new(Shop::default());
        let products = [product("price_mug", "Mug", None)];
        let views = catalog.views(&products).await;
        assert_eq!(views[0].left, None);
        assert!(!views[0].out_of_stock);
        assert_eq!(views[0].max_quantity, MAX_QUANTITY);
    }
}
