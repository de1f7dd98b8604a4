//! `product-stock`: products and their stock levels, readable in stock order
//! — the "remote criteria" read model, where the question (which products are
//! running low?) is answered by an ordered scan instead of a filter over
//! every product.
//!
//! Keys and documents:
//! - `product-<sku>`: `{"sku", "name", "stock"}`. `name` is `null` when stock
//!   arrives for a product never added.
//! - `by-stock/<stock, 20 digits zero-padded>/<sku>`: a copy of the same
//!   document. Zero padding makes key order stock order, so a scan of
//!   `by-stock/` lists products from the lowest stock up, and the copy answers
//!   the query without a read per product. Every change of stock moves the
//!   product's index key: the old one is deleted, the new one written, in the
//!   same batch.
//!
//! Query `low-stock?below=N[&limit=M]`: the products with stock below `N`,
//! lowest first (ties by SKU), at most `M` (default 100, at most 1000).
//!
//! Stock is a non-negative integer. Removing more than is in stock is refused:
//! the write side should never have allowed it, and an index that sorts
//! negative numbers wrongly would be a quiet lie.

use prism_guest::{Description, Error, Event, Params, Projection, Queries, QueryError, View};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The projection; it keeps nothing outside the view.
#[derive(Debug, Default)]
pub struct ProductStock;

/// The document under `product-<sku>` and its `by-stock/` index key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    pub sku: String,
    /// `None` until `ProductAdded`.
    pub name: Option<String>,
    pub stock: u64,
}

#[derive(Deserialize)]
struct ProductAdded {
    sku: String,
    name: String,
    stock: u64,
}

/// The payload of both `StockReceived` and `StockRemoved`.
#[derive(Deserialize)]
struct StockMoved {
    sku: String,
    quantity: u64,
}

/// The default and the largest number of products `low-stock` returns.
pub const DEFAULT_LOW_STOCK_LIMIT: u32 = 100;
pub const MAX_LOW_STOCK_LIMIT: u32 = 1000;

const INDEX_PREFIX: &str = "by-stock/";

pub fn product_key(sku: &str) -> String {
    format!("product-{sku}")
}

/// The index key that sorts `sku` by `stock`.
pub fn index_key(stock: u64, sku: &str) -> String {
    format!("{INDEX_PREFIX}{stock:020}/{sku}")
}

impl Projection for ProductStock {
    fn describe() -> Description {
        Description::new("product-stock", env!("CARGO_PKG_VERSION")).event_types([
            "ProductAdded",
            "StockReceived",
            "StockRemoved",
        ])
    }

    fn queries() -> Queries<Self> {
        Queries::new().query("low-stock", |_, view, params| low_stock(view, params))
    }

    /// Only the product is read; index keys are written blind.
    fn keys(&self, event: &Event) -> Vec<String> {
        #[derive(Deserialize)]
        struct Sku {
            sku: String,
        }
        // A malformed payload yields no keys here; `handle` reports it.
        event
            .data::<Sku>()
            .map(|Sku { sku }| vec![product_key(&sku)])
            .unwrap_or_default()
    }

    fn handle(&mut self, view: &mut View, event: &Event) -> Result<(), Error> {
        match event.event_type.as_str() {
            "ProductAdded" => {
                let ProductAdded { sku, name, stock } = event.data()?;
                let before = view.get_json::<Product>(&product_key(&sku))?;
                let after = Product {
                    sku,
                    name: Some(name),
                    stock,
                };
                store(view, before, &after)
            }
            "StockReceived" | "StockRemoved" => {
                let StockMoved { sku, quantity } = event.data()?;
                let before = view.get_json::<Product>(&product_key(&sku))?;
                let mut after = before.clone().unwrap_or(Product {
                    sku,
                    name: None,
                    stock: 0,
                });
                after.stock = if event.event_type == "StockReceived" {
                    after.stock.checked_add(quantity).ok_or_else(|| {
                        Error::new(format!(
                            "receiving {quantity} of {} overflows its stock",
                            after.sku
                        ))
                    })?
                } else {
                    after.stock.checked_sub(quantity).ok_or_else(|| {
                        Error::new(format!(
                            "removing {quantity} of {} at position {} exceeds its stock of {}",
                            after.sku, event.position, after.stock
                        ))
                    })?
                };
                store(view, before, &after)
            }
            // Not declared, so the host never sends it.
            _ => Ok(()),
        }
    }
}

/// Writes `after` and keeps the index in step: the old index key goes when
/// the stock changed, and the new one always gets the current document.
fn store(view: &mut View, before: Option<Product>, after: &Product) -> Result<(), Error> {
    if let Some(before) = before
        && before.stock != after.stock
    {
        view.delete(&index_key(before.stock, &before.sku))?;
    }
    view.put_json(&index_key(after.stock, &after.sku), after)?;
    view.put_json(&product_key(&after.sku), after)
}

fn low_stock(view: &mut View, params: &Params) -> Result<Value, QueryError> {
    let below: u64 = params.get("below")?;
    let limit: u32 = params.get_or("limit", DEFAULT_LOW_STOCK_LIMIT)?;
    if limit > MAX_LOW_STOCK_LIMIT {
        return Err(QueryError::InvalidParams(format!(
            "`limit` is at most {MAX_LOW_STOCK_LIMIT}"
        )));
    }
    // Index keys below `by-stock/<below>` are exactly those with stock < below.
    let end = format!("{INDEX_PREFIX}{below:020}");
    let products = view
        .scan(INDEX_PREFIX, Some(&end), limit)?
        .iter()
        .map(|entry| entry.json::<Value>())
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Value::Array(products))
}

prism_guest::export_projection!(ProductStock);

#[cfg(test)]
mod tests {
    use prism_guest::testing::{Harness, NewEvent, event};
    use serde_json::json;

    use super::*;

    fn added(sku: &str, name: &str, stock: u64) -> NewEvent {
        event(
            format!("product-{sku}"),
            "ProductAdded",
            json!({ "sku": sku, "name": name, "stock": stock }),
        )
    }

    fn received(sku: &str, quantity: u64) -> NewEvent {
        event(
            format!("product-{sku}"),
            "StockReceived",
            json!({ "sku": sku, "quantity": quantity }),
        )
    }

    fn removed(sku: &str, quantity: u64) -> NewEvent {
        event(
            format!("product-{sku}"),
            "StockRemoved",
            json!({ "sku": sku, "quantity": quantity }),
        )
    }

    fn low_stock(harness: &mut Harness<ProductStock>, below: u64) -> Vec<String> {
        let answer = harness
            .query("low-stock", Params::new().with("below", below.to_string()))
            .unwrap();
        answer
            .as_array()
            .unwrap()
            .iter()
            .map(|product| product["sku"].as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn stock_follows_receipts_and_removals() {
        let harness = Harness::<ProductStock>::new().given([
            added("mug", "Mug", 10),
            received("mug", 5),
            removed("mug", 12),
        ]);
        assert_eq!(
            harness.view("product-mug"),
            Some(json!({"sku": "mug", "name": "Mug", "stock": 3}))
        );
    }

    #[test]
    fn the_index_holds_one_key_per_product_at_its_current_stock() {
        let harness = Harness::<ProductStock>::new().given([
            added("mug", "Mug", 10),
            added("pen", "Pen", 200),
            removed("mug", 7),
            received("pen", 0),
        ]);
        assert_eq!(
            harness.keys_with_prefix("by-stock/"),
            [
                "by-stock/00000000000000000003/mug",
                "by-stock/00000000000000000200/pen"
            ]
        );
        assert_eq!(
            harness.view("by-stock/00000000000000000003/mug"),
            harness.view("product-mug")
        );
    }

    #[test]
    fn low_stock_lists_products_below_the_threshold_lowest_first() {
        let mut harness = Harness::<ProductStock>::new().given([
            added("pen", "Pen", 200),
            added("mug", "Mug", 10),
            added("cap", "Cap", 3),
            added("bag", "Bag", 3),
            received("mug", 90),
            removed("pen", 195),
        ]);
        assert_eq!(low_stock(&mut harness, 10), ["bag", "cap", "pen"]);
        assert_eq!(low_stock(&mut harness, 3), Vec::<String>::new());
        assert_eq!(low_stock(&mut harness, 101), ["bag", "cap", "pen", "mug"]);
        let answer = harness
            .query(
                "low-stock",
                Params::new().with("below", "4").with("limit", "1"),
            )
            .unwrap();
        assert_eq!(answer, json!([{"sku": "bag", "name": "Bag", "stock": 3}]));
    }

    #[test]
    fn low_stock_requires_a_numeric_threshold_and_a_sane_limit() {
        let mut harness = Harness::<ProductStock>::new();
        for params in [
            Params::new(),
            Params::new().with("below", "few"),
            Params::new().with("below", "5").with("limit", "1000000"),
        ] {
            assert!(matches!(
                harness.query("low-stock", params),
                Err(QueryError::InvalidParams(_))
            ));
        }
    }

    #[test]
    fn removing_more_than_is_in_stock_is_refused() {
        let mut harness = Harness::<ProductStock>::new().given([added("mug", "Mug", 2)]);
        let error = harness.when([removed("mug", 3)]).unwrap_err();
        assert!(
            error.message.contains("exceeds its stock of 2"),
            "{}",
            error.message
        );
        assert_eq!(
            harness.view_json::<Product>("product-mug").unwrap().stock,
            2
        );
    }

    #[test]
    fn stock_received_for_an_unknown_product_creates_it_unnamed() {
        let harness = Harness::<ProductStock>::new().given([received("hat", 4)]);
        assert_eq!(
            harness.view("product-hat"),
            Some(json!({"sku": "hat", "name": null, "stock": 4}))
        );
    }

    #[test]
    fn re_adding_a_product_replaces_it_and_moves_its_index_key() {
        let harness = Harness::<ProductStock>::new()
            .given([added("mug", "Mug", 10), added("mug", "Big mug", 1)]);
        assert_eq!(
            harness.keys_with_prefix("by-stock/"),
            ["by-stock/00000000000000000001/mug"]
        );
        assert_eq!(
            harness
                .view_json::<Product>("product-mug")
                .unwrap()
                .name
                .as_deref(),
            Some("Big mug")
        );
    }

    #[test]
    fn batches_of_any_size_build_the_same_index() {
        let history = || {
            (0..60u64).map(|n| {
                let sku = format!("sku-{}", n % 6);
                match n % 3 {
                    0 => received(&sku, n),
                    1 => removed(&sku, 0),
                    _ => added(&sku, "thing", n),
                }
            })
        };
        let whole = Harness::<ProductStock>::new().given(history());
        let small = Harness::<ProductStock>::new()
            .batch_size(5)
            .given(history());
        assert_eq!(whole.backend(), small.backend());
        assert_eq!(whole.keys_with_prefix("by-stock/").len(), 6);
    }
}
