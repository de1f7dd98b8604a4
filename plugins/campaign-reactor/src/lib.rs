//! `campaign-reactor`: the reacting half of the email-campaign saga. It
//! follows the ratings `customer-classification` emits
//! (`CustomerClassificationUpdated`), keeping the customers of each rating
//! under `rating-{R}`, and when `EmailCampaignStarted {"campaign": C,
//! "rating": R}` arrives it emits one `CampaignEmailRequested` per customer
//! then rated R to the stream `campaign-{C}` (the saga's record of what was
//! asked) and puts one email request per customer in the outbox for the
//! target `email`, which the host delivers to the mail service configured
//! in `prism.toml`. Each event is appended and each request enqueued
//! exactly once, however often the log is replayed; the mail service gets
//! every request at least once, with an `Idempotency-Key` to drop repeats.

use std::collections::BTreeSet;

use prism_guest::{Description, Error, Event, OutboxRequest, Projection, View};
use serde::Deserialize;
use serde_json::json;

#[derive(Default)]
pub struct CampaignReactor;

#[derive(Deserialize)]
struct Classified {
    customer: String,
    rating: String,
    previous: Option<String>,
}

#[derive(Deserialize)]
struct CampaignStarted {
    campaign: String,
    rating: String,
}

impl Projection for CampaignReactor {
    fn describe() -> Description {
        Description::new("campaign-reactor", "1.0.0")
            .event_types(["CustomerClassificationUpdated", "EmailCampaignStarted"])
            .emits(["campaign-*"])
            .targets(["email"])
    }

    fn handle(&mut self, view: &mut View, event: &Event) -> Result<(), Error> {
        match event.event_type.as_str() {
            "CustomerClassificationUpdated" => {
                let c: Classified = event.data()?;
                if let Some(previous) = c.previous {
                    view.upsert(
                        &format!("rating-{previous}"),
                        |set: &mut BTreeSet<String>| {
                            set.remove(&c.customer);
                        },
                    )?;
                }
                view.upsert(
                    &format!("rating-{}", c.rating),
                    |set: &mut BTreeSet<String>| {
                        set.insert(c.customer.clone());
                    },
                )
            }
            "EmailCampaignStarted" => {
                let started: CampaignStarted = event.data()?;
                let customers: BTreeSet<String> = view
                    .get_json(&format!("rating-{}", started.rating))?
                    .unwrap_or_default();
                let stream = format!("campaign-{}", started.campaign);
                for customer in &customers {
                    view.emit(
                        event,
                        &stream,
                        "CampaignEmailRequested",
                        &json!({"campaign": started.campaign, "customer": customer}),
                    )?;
                    let email = json!({
                        "campaign": started.campaign,
                        "customer": customer,
                        "template": format!("campaign-{}", started.campaign),
                    });
                    // One queue per customer: a customer's emails go out in
                    // order, and a failing one holds back no one else's.
                    view.enqueue_request(
                        event,
                        OutboxRequest::new("email", &email)?
                            .ordering_key(format!("customer-{customer}")),
                    )?;
                }
                view.put_json(
                    &stream,
                    &json!({"rating": started.rating, "requested": customers.len()}),
                )
            }
            _ => Ok(()),
        }
    }
}

prism_guest::export_projection!(CampaignReactor);

#[cfg(test)]
mod tests {
    use prism_guest::testing::{Harness, event};
    use serde_json::json;

    use super::*;

    fn classified(
        customer: &str,
        rating: &str,
        previous: Option<&str>,
    ) -> prism_guest::testing::NewEvent {
        event(
            format!("customer-{customer}"),
            "CustomerClassificationUpdated",
            json!({"customer": customer, "rating": rating, "previous": previous}),
        )
    }

    #[test]
    fn a_campaign_requests_one_email_per_customer_of_its_rating() {
        let harness = Harness::<CampaignReactor>::new().given([
            classified("ann", "C", None),
            classified("ann", "B", Some("C")),
            classified("bob", "B", None),
            classified("cid", "A", None),
            classified("bob", "A", Some("B")),
            classified("dan", "B", None),
            event(
                "campaigns",
                "EmailCampaignStarted",
                json!({"campaign": "spring", "rating": "B"}),
            ),
        ]);
        let requested: Vec<String> = harness
            .emitted()
            .iter()
            .map(|e| {
                assert_eq!(e.stream_id, "campaign-spring");
                assert_eq!(e.event_type, "CampaignEmailRequested");
                serde_json::from_str::<serde_json::Value>(&e.data).unwrap()["customer"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(requested, ["ann", "dan"]);
        let emails: Vec<(&str, Option<&str>)> = harness
            .outbox()
            .iter()
            .map(|r| (r.target.as_str(), r.ordering_key.as_deref()))
            .collect();
        assert_eq!(
            emails,
            [
                ("email", Some("customer-ann")),
                ("email", Some("customer-dan"))
            ]
        );
        assert_eq!(
            harness.view("campaign-spring"),
            Some(json!({"rating": "B", "requested": 2}))
        );
    }
}
