//! `indexed-balance`: `account-balance` with one secondary index, on
//! `balance`, for the benchmark that measures what maintaining an index
//! costs a replay and for the deploy tests where a changed index
//! declaration is a new generation. Same events, same documents.

use prism_guest::{Description, Error, Event, FieldKind, Index, Projection, View};
use serde::{Deserialize, Serialize};

#[derive(Default)]
pub struct IndexedBalance;

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
struct Moved {
    amount: i64,
}

impl Projection for IndexedBalance {
    fn describe() -> Description {
        Description::new("indexed-balance", env!("CARGO_PKG_VERSION"))
            .event_types(["AccountOpened", "Deposited", "Withdrawn"])
            .index(Index::new("by-balance").field("balance", FieldKind::Number))
    }

    fn keys(&self, event: &Event) -> Vec<String> {
        vec![event.stream_id.clone()]
    }

    fn handle(&mut self, view: &mut View, event: &Event) -> Result<(), Error> {
        // As `account-balance` does: the account stays decoded for the batch.
        let key = &event.stream_id;
        view.upsert(key, |account: &mut Account| {
            match event.event_type.as_str() {
                "AccountOpened" => account.owner = Some(event.data::<Opened>()?.owner),
                "Deposited" | "Withdrawn" => {
                    let Moved { amount } = event.data()?;
                    let amount = if event.event_type == "Deposited" {
                        amount
                    } else {
                        -amount
                    };
                    account.balance = account
                        .balance
                        .checked_add(amount)
                        .ok_or_else(|| Error::new(format!("the balance of {key} overflows")))?;
                    account.transactions += 1;
                }
                _ => {}
            }
            Ok(())
        })?
    }
}

prism_guest::export_projection!(IndexedBalance);
