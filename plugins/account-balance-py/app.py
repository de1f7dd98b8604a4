"""`account-balance` in Python: the canonical Prism demo, document for document the same
as the Rust plugin (`plugins/account-balance`).

One document per account stream (`account-<id>`), keyed by the stream id:

    {"owner": "ann", "balance": 75, "transactions": 2}

Amounts are JSON integers in the currency's minor unit; a fractional amount (or one that
is not a number) refuses the batch rather than being rounded, and so does a balance that
would leave the 64-bit range the Rust plugin keeps it in. Money moved on a stream before
its `AccountOpened` still counts: the owner is `null` until the account is opened. A
withdrawal may overdraw: the read model reports what happened.

One query, as in the Rust plugin: `richest?limit=N`, the `N` (default 10, at most 100)
accounts with the highest balance, highest first (ties by key), as
`[{"account", "balance"}]`, from the first 10,000 documents.
"""

import prism_projection as prism

I64_MIN = -(2**63)
I64_MAX = 2**63 - 1
RICHEST_SCAN = 10_000
RICHEST_MAX_LIMIT = 100


def _object(event):
    data = event.data
    if not isinstance(data, dict):
        raise TypeError(f"{event.event_type} data must be a JSON object, not {type(data).__name__}")
    return data


def _owner(event):
    owner = _object(event).get("owner")
    if not isinstance(owner, str):
        raise TypeError(f"AccountOpened owner must be a string, not {owner!r}")
    return owner


def _amount(event):
    data = _object(event)
    if "amount" not in data:
        raise KeyError(f"{event.event_type} has no amount")
    amount = data["amount"]
    # bool is an int in Python; JSON true is not an amount.
    if type(amount) is not int or not I64_MIN <= amount <= I64_MAX:
        raise TypeError(f"{event.event_type} amount must be a 64-bit integer, not {amount!r}")
    return amount


@prism.export
class AccountBalance(prism.Projection):
    name = "account-balance"
    version = "0.1.0"
    event_types = ["AccountOpened", "Deposited", "Withdrawn"]

    def keys(self, event):
        return [event.stream_id]

    def handle(self, view, event):
        key = event.stream_id
        account = view.get(key) or {"owner": None, "balance": 0, "transactions": 0}
        if event.event_type == "AccountOpened":
            account["owner"] = _owner(event)
        elif event.event_type in ("Deposited", "Withdrawn"):
            amount = _amount(event)
            balance = account["balance"] + (amount if event.event_type == "Deposited" else -amount)
            if not I64_MIN <= balance <= I64_MAX:
                raise OverflowError(
                    f"{event.event_type} of {amount} at position {event.position} overflows "
                    f"the balance {account['balance']} of {key}"
                )
            account["balance"] = balance
            account["transactions"] += 1
        else:
            return  # not declared, so the host never sends it
        # Field order as the Rust plugin writes it, so the documents match byte for byte.
        view.put(key, {"owner": account["owner"], "balance": account["balance"], "transactions": account["transactions"]})

    @prism.query("richest")
    def richest(self, view, params):
        limit = params.get("limit", "10")
        if not limit.isascii() or not limit.isdigit():
            raise prism.InvalidParams(f"`limit` must be a number, not {limit!r}")
        if int(limit) > RICHEST_MAX_LIMIT:
            raise prism.InvalidParams(f"`limit` is at most {RICHEST_MAX_LIMIT}")
        accounts = [{"account": key, "balance": doc["balance"]} for key, doc in view.scan(limit=RICHEST_SCAN)]
        accounts.sort(key=lambda a: (-a["balance"], a["account"].encode("utf-8")))
        return accounts[: int(limit)]
