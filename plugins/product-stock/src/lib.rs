//! `product-stock`: products and their stock levels, readable in stock order
//! — the "remote criteria" read model, where the question (which products are
//! running low?) is answered by an ordered index instead of a filter over
//! every product.
//!
//! Documents: `product-<sku>`: `{"sku", "name", "stock"}`. `name` is `null`
//! when stock arrives for a product never added.
//!
//! Index `by-stock` over `stock` (a number) of the `product-` documents,
//! declared in the description and maintained by the host in the same
//! write batch as the documents: the projection only writes documents. Ask
//! it over HTTP, e.g. the products below 10, lowest first, page by page:
//! `GET /views/product-stock/_find?index=by-stock&stock.lt=10&limit=50`.
//!
//! Query `low-stock?below=N[&limit=M]`: the same answer as a named query
//! (the products with stock below `N`, lowest first, ties by SKU, at most
//! `M`, default 100, at most 1000), worked out inside the plugin by reading
//! every product: an example of a named query, fine for a few thousand
//! products. `_find` reads only the products it answers with.
//!
//! Stock is a non-negative integer. Removing more than is in stock is refused:
//! the write side should never have allowed it.

use prism_guest::{
    Description, Error, Event, FieldKind, Index, Params, Projection, Queries, QueryError, View,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The projection; it keeps nothing outside the view.
#[derive(Debug, Default)]
pub struct ProductStock;

/// The document under `product-<sku>`.
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

const PRODUCT_PREFIX: &str = "product-";

pub fn product_key(sku: &str) -> String {
    format!("{PRODUCT_PREFIX}{sku}")
}

impl Projection for ProductStock {
    fn describe() -> Description {
        Description::new("product-stock", env!("CARGO_PKG_VERSION"))
            .event_types(["ProductAdded", "StockReceived", "StockRemoved"])
            .index(
                Index::new("by-stock")
                    .field("stock", FieldKind::Number)
                    .prefix(PRODUCT_PREFIX),
            )
    }

    fn queries() -> Queries<Self> {
        Queries::new().query("low-stock", |_, view, params| low_stock(view, params))
    }

    /// Only the product is read.
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
                let product = Product {
                    sku,
                    name: Some(name),
                    stock,
                };
                view.put_json(&product_key(&product.sku), &product)
            }
            "StockReceived" | "StockRemoved" => {
                let StockMoved { sku, quantity } = event.data()?;
                let before = view.get_json::<Product>(&product_key(&sku))?;
                let mut after = before.unwrap_or(Product {
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
                view.put_json(&product_key(&after.sku), &after)
            }
            // Not declared, so the host never sends it.
            _ => Ok(()),
        }
    }
}

fn low_stock(view: &mut View, params: &Params) -> Result<Value, QueryError> {
    let below: u64 = params.get("below")?;
    let limit: u32 = params.get_or("limit", DEFAULT_LOW_STOCK_LIMIT)?;
    if limit > MAX_LOW_STOCK_LIMIT {
        return Err(QueryError::InvalidParams(format!(
            "`limit` is at most {MAX_LOW_STOCK_LIMIT}"
        )));
    }
    let mut low: Vec<Product> = Vec::new();
    let mut start = PRODUCT_PREFIX.to_string();
    loop {
        let page = view.scan(&start, Some("product."), 1000)?;
        let Some(last) = page.last() else { break };
        start = format!("{}\0", last.key);
        for entry in &page {
            let product: Product = entry.json()?;
            if product.stock < below {
                low.push(product);
            }
        }
    }
    low.sort_by(|a, b| a.stock.cmp(&b.stock).then_with(|| a.sku.cmp(&b.sku)));
    low.truncate(limit as usize);
    serde_json::to_value(low).map_err(|e| QueryError::Failed(e.to_string()))
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
    fn only_documents_are_written_and_the_index_is_declared() {
        let harness = Harness::<ProductStock>::new().given([
            added("mug", "Mug", 10),
            added("pen", "Pen", 200),
            removed("mug", 7),
        ]);
        assert_eq!(harness.keys(), ["product-mug", "product-pen"]);
        let index = &ProductStock::describe().indexes[0];
        assert_eq!(index.name, "by-stock");
        assert_eq!(index.fields, [("stock".to_string(), FieldKind::Number)]);
        assert_eq!(index.prefix.as_deref(), Some("product-"));
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
    fn re_adding_a_product_replaces_it() {
        let harness = Harness::<ProductStock>::new()
            .given([added("mug", "Mug", 10), added("mug", "Big mug", 1)]);
        assert_eq!(harness.keys(), ["product-mug"]);
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
    fn batches_of_any_size_build_the_same_view() {
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
        assert_eq!(whole.keys_with_prefix("product-").len(), 6);
    }
}
