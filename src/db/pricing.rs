//! What the pricing page offers and Checkout sells, from the synced products and prices.

use sqlx::Row;

use super::{Db, DbError};
use crate::domain::pricing::{PlanPrice, ProductPlans};

/// The prices the pricing page shows and Checkout sells: active, licensed, recurring or one-time,
/// with a unit amount, of an active product (`p` prices, `pr` products) of the account selling
/// (bound where `{account}` stands: Checkout sells with that account's key).
const OFFERED: &str = "p.account_id = {account} AND pr.account_id = {account} \
    AND p.active = 1 AND p.deleted = 0 AND pr.active = 1 AND pr.deleted = 0 \
    AND p.unit_amount IS NOT NULL AND COALESCE(p.usage_type, 'licensed') = 'licensed' \
    AND COALESCE(p.type, 'recurring') IN ('recurring', 'one_time')";

/// Active products with their offered prices of `account` (`''`: the environment's), by product
/// name then price.
pub async fn offered(db: &Db, account: &str) -> Result<Vec<ProductPlans>, DbError> {
    let rows = sqlx::query(&format!(
        "SELECT p.id AS price_id, p.unit_amount, p.currency, p.recurring_interval, p.recurring_interval_count, \
                p.nickname, p.product_id, pr.name, pr.raw AS product_raw \
         FROM prices p JOIN products pr ON pr.id = p.product_id \
         WHERE {} ORDER BY pr.name, pr.id, p.unit_amount, p.id",
        OFFERED.replace("{account}", "$1")
    ))
    .bind(account)
    .fetch_all(db.reader())
    .await?;
    let mut products: Vec<ProductPlans> = Vec::new();
    for r in &rows {
        let product_id: String = r.try_get("product_id").unwrap_or_default();
        let price = PlanPrice {
            id: r.try_get("price_id").unwrap_or_default(),
            unit_amount: r.try_get::<Option<i64>, _>("unit_amount").ok().flatten().unwrap_or(0),
            currency: r
                .try_get::<Option<String>, _>("currency")
                .ok()
                .flatten()
                .unwrap_or_default(),
            interval: r.try_get("recurring_interval").ok().flatten(),
            interval_count: r
                .try_get::<Option<i64>, _>("recurring_interval_count")
                .ok()
                .flatten()
                .unwrap_or(1),
            nickname: r.try_get("nickname").ok().flatten(),
        };
        match products.last_mut().filter(|p| p.product_id == product_id) {
            Some(product) => product.prices.push(price),
            None => {
                let raw: String = r.try_get("product_raw").unwrap_or_default();
                let description = serde_json::from_str::<serde_json::Value>(&raw)
                    .ok()
                    .and_then(|v| v.get("description").and_then(|d| d.as_str()).map(str::to_string));
                products.push(ProductPlans {
                    product_id,
                    name: r
                        .try_get::<Option<String>, _>("name")
                        .ok()
                        .flatten()
                        .unwrap_or_default(),
                    description,
                    prices: vec![price],
                });
            }
        }
    }
    Ok(products)
}

/// The `type` of an offered price (`recurring`, `one_time`; `Some(None)` when Stripe left it out),
/// or `None` when the pricing page does not offer it.
pub async fn offered_price_type(db: &Db, account: &str, price_id: &str) -> Result<Option<Option<String>>, DbError> {
    Ok(sqlx::query_scalar(&format!(
        "SELECT p.type FROM prices p JOIN products pr ON pr.id = p.product_id WHERE p.id = $1 AND {}",
        OFFERED.replace("{account}", "$2")
    ))
    .bind(price_id)
    .bind(account)
    .fetch_optional(db.reader())
    .await?)
}
