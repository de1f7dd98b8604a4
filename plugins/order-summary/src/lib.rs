//! `order-summary`: one summary per customer, joined in bulk from three event
//! types — the "order summaries per customer" read model of the CQRS
//! literature.
//!
//! Keys and documents:
//! - `customer-<id>`: `{"customer_id", "name", "orders", "total_spent",
//!   "open_orders": [order ids, oldest first], "shipped_orders"}`. `name` is
//!   `null` while orders arrive for a customer not registered yet.
//! - `order-<id>`: `{"customer_id", "total", "shipped"}`, the join table:
//!   `OrderShipped` names only the order, and this is how it finds its
//!   customer. It lives in the view, not in the projection, so a replay or a
//!   fresh instance finds it too.
//!
//! Ids may be JSON strings or integers (`7` and `"7"` are the same customer).
//! Totals are integers in the currency's minor unit, like every amount in the
//! demos. A repeated `OrderPlaced`, or an `OrderShipped` for an unknown or
//! already shipped order, changes nothing and is logged as a warning.

use prism_guest::{Description, Error, Event, Projection, View};
use serde::{Deserialize, Deserializer, Serialize};

/// The projection; it keeps nothing outside the view.
#[derive(Debug, Default)]
pub struct OrderSummary;

/// The document under `customer-<id>`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    pub customer_id: String,
    /// `None` until `CustomerRegistered`.
    pub name: Option<String>,
    /// Orders placed, shipped or not.
    pub orders: u64,
    /// The sum of the totals of all orders placed.
    pub total_spent: i64,
    /// Ids of the orders not shipped yet, in the order they were placed.
    pub open_orders: Vec<String>,
    pub shipped_orders: u64,
}

/// The document under `order-<id>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub customer_id: String,
    pub total: i64,
    pub shipped: bool,
}

#[derive(Deserialize)]
struct CustomerRegistered {
    #[serde(deserialize_with = "id")]
    customer_id: String,
    name: String,
}

#[derive(Deserialize)]
struct OrderPlaced {
    #[serde(deserialize_with = "id")]
    order_id: String,
    #[serde(deserialize_with = "id")]
    customer_id: String,
    total: i64,
}

#[derive(Deserialize)]
struct OrderShipped {
    #[serde(deserialize_with = "id")]
    order_id: String,
}

pub fn customer_key(customer_id: &str) -> String {
    format!("customer-{customer_id}")
}

pub fn order_key(order_id: &str) -> String {
    format!("order-{order_id}")
}

impl Projection for OrderSummary {
    fn describe() -> Description {
        Description::new("order-summary", env!("CARGO_PKG_VERSION")).event_types([
            "CustomerRegistered",
            "OrderPlaced",
            "OrderShipped",
        ])
    }

    /// The customer and order keys an event names. The customer of a shipped
    /// order is only known once its order document is read, so it is read
    /// on demand, unless the batch already holds it.
    fn keys(&self, event: &Event) -> Vec<String> {
        // A malformed payload yields no keys here; `handle` reports it.
        match event.event_type.as_str() {
            "CustomerRegistered" => event
                .data::<CustomerRegistered>()
                .map(|registered| vec![customer_key(&registered.customer_id)])
                .unwrap_or_default(),
            "OrderPlaced" => event
                .data::<OrderPlaced>()
                .map(|placed| {
                    vec![
                        order_key(&placed.order_id),
                        customer_key(&placed.customer_id),
                    ]
                })
                .unwrap_or_default(),
            "OrderShipped" => event
                .data::<OrderShipped>()
                .map(|shipped| vec![order_key(&shipped.order_id)])
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    }

    fn handle(&mut self, view: &mut View, event: &Event) -> Result<(), Error> {
        match event.event_type.as_str() {
            "CustomerRegistered" => register(view, event.data()?),
            "OrderPlaced" => place(view, event.data()?, event),
            "OrderShipped" => ship(view, event.data()?),
            // Not declared, so the host never sends it.
            _ => Ok(()),
        }
    }
}

fn register(view: &mut View, registered: CustomerRegistered) -> Result<(), Error> {
    let key = customer_key(&registered.customer_id);
    view.upsert(&key, |customer: &mut Customer| {
        customer.customer_id = registered.customer_id;
        customer.name = Some(registered.name);
    })
}

fn place(view: &mut View, placed: OrderPlaced, event: &Event) -> Result<(), Error> {
    let order_key = order_key(&placed.order_id);
    if view.get_value(&order_key)?.is_some() {
        prism_guest::warn!(
            "order {} placed again at position {}; the first placement stands",
            placed.order_id,
            event.position
        );
        return Ok(());
    }
    let customer_key = customer_key(&placed.customer_id);
    let mut customer: Customer = view.get_json(&customer_key)?.unwrap_or_default();
    customer.customer_id.clone_from(&placed.customer_id);
    customer.orders += 1;
    customer.total_spent = customer
        .total_spent
        .checked_add(placed.total)
        .ok_or_else(|| {
            Error::new(format!(
                "order {} overflows the total spent by customer {}",
                placed.order_id, placed.customer_id
            ))
        })?;
    customer.open_orders.push(placed.order_id);
    view.put_json(&customer_key, &customer)?;
    view.put_json(
        &order_key,
        &Order {
            customer_id: placed.customer_id,
            total: placed.total,
            shipped: false,
        },
    )
}

fn ship(view: &mut View, shipped: OrderShipped) -> Result<(), Error> {
    let order_key = order_key(&shipped.order_id);
    let Some(mut order) = view.get_json::<Order>(&order_key)? else {
        prism_guest::warn!("order {} shipped but never placed", shipped.order_id);
        return Ok(());
    };
    if order.shipped {
        prism_guest::warn!("order {} shipped twice", shipped.order_id);
        return Ok(());
    }
    order.shipped = true;
    view.put_json(&order_key, &order)?;
    view.upsert(
        &customer_key(&order.customer_id),
        |customer: &mut Customer| {
            customer
                .open_orders
                .retain(|open| *open != shipped.order_id);
            customer.shipped_orders += 1;
        },
    )
}

/// An id given as a JSON string or integer, as a string.
fn id<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        Text(String),
        Number(i64),
    }
    Ok(match Id::deserialize(deserializer)? {
        Id::Text(text) => text,
        Id::Number(number) => number.to_string(),
    })
}

prism_guest::export_projection!(OrderSummary);

#[cfg(test)]
mod tests {
    use prism_guest::testing::{Harness, NewEvent, event};
    use serde_json::json;

    use super::*;

    fn registered(customer_id: &str, name: &str) -> NewEvent {
        event(
            format!("customer-{customer_id}"),
            "CustomerRegistered",
            json!({ "customer_id": customer_id, "name": name }),
        )
    }

    fn placed(order_id: &str, customer_id: &str, total: i64) -> NewEvent {
        event(
            format!("order-{order_id}"),
            "OrderPlaced",
            json!({ "order_id": order_id, "customer_id": customer_id, "total": total }),
        )
    }

    fn shipped(order_id: &str) -> NewEvent {
        event(
            format!("order-{order_id}"),
            "OrderShipped",
            json!({ "order_id": order_id }),
        )
    }

    #[test]
    fn a_customers_orders_are_summed_and_split_into_open_and_shipped() {
        let harness = Harness::<OrderSummary>::new().given([
            registered("c1", "Ada"),
            placed("o1", "c1", 1500),
            placed("o2", "c1", 250),
            placed("o3", "c1", 100),
            shipped("o2"),
        ]);
        assert_eq!(
            harness.view("customer-c1"),
            Some(json!({
                "customer_id": "c1",
                "name": "Ada",
                "orders": 3,
                "total_spent": 1850,
                "open_orders": ["o1", "o3"],
                "shipped_orders": 1,
            }))
        );
        assert_eq!(
            harness.view("order-o2"),
            Some(json!({"customer_id": "c1", "total": 250, "shipped": true}))
        );
    }

    #[test]
    fn a_shipment_in_a_later_batch_finds_its_customer_through_the_order() {
        let mut harness =
            Harness::<OrderSummary>::new().given([registered("c1", "Ada"), placed("o1", "c1", 10)]);
        harness.when([shipped("o1")]).unwrap();
        let customer = harness.view_json::<Customer>("customer-c1").unwrap();
        assert!(customer.open_orders.is_empty());
        assert_eq!(customer.shipped_orders, 1);
    }

    #[test]
    fn orders_before_registration_are_kept_and_named_later() {
        let harness = Harness::<OrderSummary>::new()
            .given([placed("o1", "c9", 40), registered("c9", "Grace")]);
        let customer = harness.view_json::<Customer>("customer-c9").unwrap();
        assert_eq!(customer.name.as_deref(), Some("Grace"));
        assert_eq!((customer.orders, customer.total_spent), (1, 40));
    }

    #[test]
    fn integer_ids_are_the_same_customer_as_string_ids() {
        let harness = Harness::<OrderSummary>::new().given([
            event(
                "customer-7",
                "CustomerRegistered",
                json!({"customer_id": 7, "name": "Lin"}),
            ),
            placed("o1", "7", 5),
        ]);
        assert_eq!(harness.keys_with_prefix("customer-"), ["customer-7"]);
        assert_eq!(
            harness.view_json::<Customer>("customer-7").unwrap().orders,
            1
        );
    }

    #[test]
    fn repeated_and_unknown_orders_change_nothing() {
        let baseline = Harness::<OrderSummary>::new().given([
            registered("c1", "Ada"),
            placed("o1", "c1", 10),
            shipped("o1"),
        ]);
        let noisy = Harness::<OrderSummary>::new().given([
            registered("c1", "Ada"),
            placed("o1", "c1", 10),
            placed("o1", "c1", 10),
            shipped("o1"),
            shipped("o1"),
            shipped("o-unknown"),
        ]);
        assert_eq!(baseline.backend(), noisy.backend());
    }

    #[test]
    fn customers_are_joined_correctly_across_many_small_batches() {
        let history = || {
            let mut events = Vec::new();
            for customer in 0..5 {
                events.push(registered(&format!("c{customer}"), "someone"));
            }
            for order in 0..40 {
                events.push(placed(
                    &format!("o{order}"),
                    &format!("c{}", order % 5),
                    order,
                ));
                if order % 3 == 0 {
                    events.push(shipped(&format!("o{}", order / 2)));
                }
            }
            events
        };
        let whole = Harness::<OrderSummary>::new().given(history());
        let small = Harness::<OrderSummary>::new()
            .batch_size(4)
            .given(history());
        assert_eq!(whole.backend(), small.backend());
        let shipped_total: u64 = (0..5)
            .map(|customer| {
                whole
                    .view_json::<Customer>(&format!("customer-c{customer}"))
                    .unwrap()
                    .shipped_orders
            })
            .sum();
        assert_eq!(shipped_total, 14);
    }

    #[test]
    fn a_malformed_order_is_refused() {
        let mut harness = Harness::<OrderSummary>::new();
        let error = harness
            .when([event("order-1", "OrderPlaced", json!({"order_id": "1"}))])
            .unwrap_err();
        assert!(
            error.message.contains("missing field `customer_id`"),
            "{}",
            error.message
        );
    }
}
