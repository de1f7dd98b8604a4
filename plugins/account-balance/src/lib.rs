//! `account-balance`: the canonical Prism demo. One document per account
//! stream (`account-<id>`), keyed by the stream id, holding the owner, the
//! balance, and how many deposits and withdrawals moved it:
//!
//! ```json
//! {"owner": "ann", "balance": 75, "transactions": 2}
//! ```
//!
//! Other tests, and the Python and JavaScript versions of this plugin, rely on
//! exactly this shape. Amounts are JSON integers in the currency's minor unit
//! (cents); a fractional amount is refused rather than rounded, because a
//! balance that silently drifts is worse than a projection that stops and says
//! why. Money moved on a stream before its `AccountOpened` still counts: the
//! owner is `null` until the account is opened. A withdrawal may overdraw: the
//! read model reports what happened, the write side enforces the rules.
//!
//! One query, `richest?limit=N`: the `N` (default 10, at most 100) accounts
//! with the highest balance, highest first (ties by key), as
//! `[{"account", "balance"}]`. It reads up to the first
//! [`RICHEST_SCAN`] documents: enough for a demo; a real projection would
//! keep an index, as `product-stock` does.

use prism_guest::{Description, Error, Event, Params, Projection, Queries, QueryError, View};
use serde::{Deserialize, Serialize};

/// Most documents `richest` reads.
pub const RICHEST_SCAN: u32 = 10_000;
/// Most accounts `richest` returns.
pub const RICHEST_MAX_LIMIT: u32 = 100;

/// The projection; it keeps nothing outside the view.
#[derive(Debug, Default)]
pub struct AccountBalance;

/// The document stored under each account's stream id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// Who opened the account; `None` (JSON `null`) until `AccountOpened`.
    pub owner: Option<String>,
    /// In the currency's minor unit.
    pub balance: i64,
    /// How many `Deposited` and `Withdrawn` events the account has seen.
    pub transactions: u64,
}

#[derive(Deserialize)]
struct AccountOpened {
    owner: String,
}

/// The payload of both `Deposited` and `Withdrawn`.
#[derive(Deserialize)]
struct MoneyMoved {
    amount: i64,
}

impl Projection for AccountBalance {
    fn describe() -> Description {
        Description::new("account-balance", env!("CARGO_PKG_VERSION")).event_types([
            "AccountOpened",
            "Deposited",
            "Withdrawn",
        ])
    }

    fn keys(&self, event: &Event) -> Vec<String> {
        vec![event.stream_id.clone()]
    }

    fn queries() -> Queries<Self> {
        Queries::new().query("richest", |_, view, params| richest(view, params))
    }

    fn handle(&mut self, view: &mut View, event: &Event) -> Result<(), Error> {
        // `upsert` keeps the account decoded in the view for the rest of the
        // batch: parsed once, printed once, however many events move it.
        view.upsert(&event.stream_id, |account: &mut Account| {
            match event.event_type.as_str() {
                "AccountOpened" => {
                    account.owner = Some(event.data::<AccountOpened>()?.owner);
                }
                "Deposited" => {
                    let MoneyMoved { amount } = event.data()?;
                    account.balance = account
                        .balance
                        .checked_add(amount)
                        .ok_or_else(|| overflow(event, account.balance, amount))?;
                    account.transactions += 1;
                }
                "Withdrawn" => {
                    let MoneyMoved { amount } = event.data()?;
                    account.balance = account
                        .balance
                        .checked_sub(amount)
                        .ok_or_else(|| overflow(event, account.balance, amount))?;
                    account.transactions += 1;
                }
                // Not declared, so the host never sends it.
                _ => {}
            }
            Ok(())
        })?
    }
}

/// One line of the `richest` answer.
#[derive(Debug, PartialEq, Eq, Serialize)]
pub struct Richest {
    pub account: String,
    pub balance: i64,
}

fn richest(view: &mut View, params: &Params) -> Result<Vec<Richest>, QueryError> {
    let limit: u32 = params.get_or("limit", 10)?;
    if limit > RICHEST_MAX_LIMIT {
        return Err(QueryError::InvalidParams(format!(
            "`limit` is at most {RICHEST_MAX_LIMIT}"
        )));
    }
    let mut accounts = view
        .scan("", None, RICHEST_SCAN)?
        .iter()
        .map(|entry| {
            let account: Account = entry.json()?;
            Ok(Richest {
                account: entry.key.clone(),
                balance: account.balance,
            })
        })
        .collect::<Result<Vec<_>, Error>>()?;
    accounts.sort_by(|a, b| {
        b.balance
            .cmp(&a.balance)
            .then_with(|| a.account.cmp(&b.account))
    });
    accounts.truncate(limit as usize);
    Ok(accounts)
}

fn overflow(event: &Event, balance: i64, amount: i64) -> Error {
    Error::new(format!(
        "{} of {amount} at position {} overflows the balance {balance} of {}",
        event.event_type, event.position, event.stream_id
    ))
}

prism_guest::export_projection!(AccountBalance);

#[cfg(test)]
mod tests {
    use prism_guest::testing::{Harness, NewEvent, event};
    use prism_guest::{Params, QueryError};
    use serde_json::json;

    use super::*;

    fn opened(stream: &str, owner: &str) -> NewEvent {
        event(stream, "AccountOpened", json!({ "owner": owner }))
    }

    fn deposited(stream: &str, amount: i64) -> NewEvent {
        event(stream, "Deposited", json!({ "amount": amount }))
    }

    fn withdrawn(stream: &str, amount: i64) -> NewEvent {
        event(stream, "Withdrawn", json!({ "amount": amount }))
    }

    #[test]
    fn an_opened_account_starts_empty() {
        let harness = Harness::<AccountBalance>::new().given([opened("account-1", "ann")]);
        assert_eq!(
            harness.view("account-1"),
            Some(json!({"owner": "ann", "balance": 0, "transactions": 0}))
        );
    }

    #[test]
    fn deposits_and_withdrawals_move_the_balance_and_count_as_transactions() {
        let harness = Harness::<AccountBalance>::new().given([
            opened("account-42", "ann"),
            deposited("account-42", 100),
            withdrawn("account-42", 25),
        ]);
        assert_eq!(
            harness.view("account-42"),
            Some(json!({"owner": "ann", "balance": 75, "transactions": 2}))
        );
    }

    #[test]
    fn accounts_are_kept_apart_by_stream() {
        let harness = Harness::<AccountBalance>::new().given([
            opened("account-1", "ann"),
            opened("account-2", "bob"),
            deposited("account-1", 10),
            deposited("account-2", 20),
            deposited("account-1", 30),
        ]);
        let balance = |key| harness.view_json::<Account>(key).unwrap().balance;
        assert_eq!(balance("account-1"), 40);
        assert_eq!(balance("account-2"), 20);
        assert_eq!(harness.keys(), ["account-1", "account-2"]);
    }

    #[test]
    fn a_withdrawal_may_overdraw() {
        let harness = Harness::<AccountBalance>::new()
            .given([opened("account-1", "ann"), withdrawn("account-1", 5)]);
        assert_eq!(
            harness.view_json::<Account>("account-1").unwrap().balance,
            -5
        );
    }

    #[test]
    fn money_moved_before_the_account_was_opened_still_counts() {
        let mut harness = Harness::<AccountBalance>::new().given([deposited("account-7", 10)]);
        assert_eq!(
            harness.view("account-7"),
            Some(json!({"owner": null, "balance": 10, "transactions": 1}))
        );
        harness.when([opened("account-7", "cy")]).unwrap();
        assert_eq!(
            harness.view("account-7"),
            Some(json!({"owner": "cy", "balance": 10, "transactions": 1}))
        );
    }

    #[test]
    fn other_event_types_never_reach_the_view() {
        let harness = Harness::<AccountBalance>::new().given([
            opened("account-1", "ann"),
            event("account-1", "AccountFrozen", json!({"amount": 99})),
        ]);
        assert_eq!(harness.events().len(), 2);
        assert_eq!(
            harness.view_json::<Account>("account-1"),
            Some(Account {
                owner: Some("ann".into()),
                balance: 0,
                transactions: 0
            })
        );
    }

    #[test]
    fn fractional_amounts_are_refused_and_leave_the_balance_as_it_was() {
        let mut harness = Harness::<AccountBalance>::new()
            .given([opened("account-1", "ann"), deposited("account-1", 10)]);
        let error = harness
            .when([event("account-1", "Deposited", json!({"amount": 2.5}))])
            .unwrap_err();
        assert_eq!(error.index, Some(0));
        assert!(error.message.contains("expected i64"), "{}", error.message);
        assert_eq!(
            harness.view_json::<Account>("account-1").unwrap().balance,
            10
        );
    }

    #[test]
    fn an_overflowing_balance_is_refused() {
        let mut harness =
            Harness::<AccountBalance>::new().given([deposited("account-1", i64::MAX)]);
        let error = harness.when([deposited("account-1", 1)]).unwrap_err();
        assert!(error.message.contains("overflows"), "{}", error.message);
    }

    #[test]
    fn batches_of_any_size_give_the_same_balances() {
        let history = || {
            (0..50).map(|n| {
                let stream = format!("account-{}", n % 4);
                if n % 5 == 0 {
                    withdrawn(&stream, n)
                } else {
                    deposited(&stream, n)
                }
            })
        };
        let whole = Harness::<AccountBalance>::new().given(history());
        let one_by_one = Harness::<AccountBalance>::new()
            .batch_size(1)
            .given(history());
        let by_seven = Harness::<AccountBalance>::new()
            .batch_size(7)
            .given(history());
        assert_eq!(whole.backend(), one_by_one.backend());
        assert_eq!(whole.backend(), by_seven.backend());
    }

    #[test]
    fn richest_lists_the_highest_balances_first() {
        let mut harness = Harness::<AccountBalance>::new().given([
            deposited("account-1", 10),
            deposited("account-2", 30),
            deposited("account-3", 30),
            withdrawn("account-4", 5),
        ]);
        assert_eq!(
            harness.query("richest", Params::new().with("limit", "3")),
            Ok(json!([
                {"account": "account-2", "balance": 30},
                {"account": "account-3", "balance": 30},
                {"account": "account-1", "balance": 10},
            ]))
        );
        assert!(matches!(
            harness.query("richest", Params::new().with("limit", "101")),
            Err(QueryError::InvalidParams(_))
        ));
    }
}
