//! `deposits-only`: a changed version of `account-balance`, for the host's
//! deploy tests. It builds documents of the same shape under the same keys
//! but no longer consumes `Withdrawn`: every account that had a withdrawal
//! gets a different document, every other account the same one. A diff of
//! the two versions is therefore known in advance.

use prism_guest::{Description, Error, Event, Projection, View};
use serde::{Deserialize, Serialize};

#[derive(Default)]
pub struct DepositsOnly;

#[derive(Default, Serialize, Deserialize)]
struct Account {
    owner: Option<String>,
    balance: i64,
    transactions: u64,
}

#[derive(Deserialize)]
struct Opened {
    owner: String,
}

#[derive(Deserialize)]
struct Deposited {
    amount: i64,
}

impl Projection for DepositsOnly {
    fn describe() -> Description {
        Description::new("deposits-only", env!("CARGO_PKG_VERSION"))
            .event_types(["AccountOpened", "Deposited"])
    }

    fn keys(&self, event: &Event) -> Vec<String> {
        vec![event.stream_id.clone()]
    }

    fn handle(&mut self, view: &mut View, event: &Event) -> Result<(), Error> {
        let key = &event.stream_id;
        let mut account: Account = view.get_json(key)?.unwrap_or_default();
        match event.event_type.as_str() {
            "AccountOpened" => account.owner = Some(event.data::<Opened>()?.owner),
            "Deposited" => {
                account.balance += event.data::<Deposited>()?.amount;
                account.transactions += 1;
            }
            _ => return Ok(()),
        }
        view.put_json(key, &account)
    }
}

prism_guest::export_projection!(DepositsOnly);
