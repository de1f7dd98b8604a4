//! `customer-classification`: the read model of the email-campaign saga.
//! It rates every customer from their orders — A from 1,000 spent, B from
//! 100, C below — under `customer-{id}`, and when a customer's rating
//! changes it emits `CustomerClassificationUpdated` to the customer's
//! stream `customer-{id}`, for other projections (the campaign reactor) to
//! react to. The host appends each such event exactly once, however often
//! the orders are replayed.

use prism_guest::{Description, Error, Event, Projection, View};
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Default)]
pub struct CustomerClassification;

/// What the view keeps per customer.
#[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Customer {
    pub orders: u64,
    pub spent: f64,
    pub rating: Option<char>,
}

#[derive(Deserialize)]
struct OrderPlaced {
    customer: String,
    total: f64,
}

/// The rating of a customer who spent `spent`.
pub fn rating(spent: f64) -> char {
    if spent >= 1000.0 {
        'A'
    } else if spent >= 100.0 {
        'B'
    } else {
        'C'
    }
}

fn key(event: &Event) -> Result<String, Error> {
    Ok(format!(
        "customer-{}",
        event.data::<OrderPlaced>()?.customer
    ))
}

impl Projection for CustomerClassification {
    fn describe() -> Description {
        Description::new("customer-classification", "1.0.0")
            .event_types(["OrderPlaced"])
            .emits(["customer-*"])
    }

    fn keys(&self, event: &Event) -> Vec<String> {
        key(event).into_iter().collect()
    }

    fn handle(&mut self, view: &mut View, event: &Event) -> Result<(), Error> {
        let order: OrderPlaced = event.data()?;
        let key = key(event)?;
        let (previous, now) = view.upsert(&key, |c: &mut Customer| {
            let previous = c.rating;
            c.orders += 1;
            c.spent += order.total;
            c.rating = Some(rating(c.spent));
            (previous, c.rating)
        })?;
        if previous != now {
            view.emit(
                event,
                &key,
                "CustomerClassificationUpdated",
                &json!({"customer": order.customer, "rating": now, "previous": previous}),
            )?;
        }
        Ok(())
    }
}

prism_guest::export_projection!(CustomerClassification);

#[cfg(test)]
mod tests {
    use prism_guest::testing::{Harness, event};
    use serde_json::{Value, json};

    use super::*;

    fn order(customer: &str, total: f64) -> prism_guest::testing::NewEvent {
        event(
            format!("order-{customer}-{total}"),
            "OrderPlaced",
            json!({"customer": customer, "total": total}),
        )
    }

    #[test]
    fn a_rating_change_is_emitted_once_per_change() {
        let harness = Harness::<CustomerClassification>::new().given([
            order("ann", 50.0),   // C
            order("ann", 30.0),   // still C: nothing emitted
            order("ann", 40.0),   // 120: B
            order("bob", 2000.0), // A
        ]);
        assert_eq!(
            harness.view_json::<Customer>("customer-ann"),
            Some(Customer {
                orders: 3,
                spent: 120.0,
                rating: Some('B')
            })
        );
        let emitted: Vec<(String, Value)> = harness
            .emitted()
            .iter()
            .map(|e| (e.stream_id.clone(), serde_json::from_str(&e.data).unwrap()))
            .collect();
        assert_eq!(
            emitted,
            [
                (
                    "customer-ann".into(),
                    json!({"customer": "ann", "rating": "C", "previous": null})
                ),
                (
                    "customer-ann".into(),
                    json!({"customer": "ann", "rating": "B", "previous": "C"})
                ),
                (
                    "customer-bob".into(),
                    json!({"customer": "bob", "rating": "A", "previous": null})
                ),
            ]
        );
    }
}
