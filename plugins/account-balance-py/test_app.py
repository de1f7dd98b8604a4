"""Unit tests of the Python `account-balance`, with the SDK's in-memory harness:
`python -m unittest` from this folder (the tests find the SDK in the repository)."""

import os
import sys
import unittest

try:
    import prism_projection  # noqa: F401 - installed with `pip install -e guest-sdk/python`
except ImportError:
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "guest-sdk", "python"))

import prism_projection as prism  # noqa: E402
from prism_projection.testing import Harness, event  # noqa: E402

from app import AccountBalance  # noqa: E402

I64_MAX = 2**63 - 1


def opened(stream, owner):
    return event(stream, "AccountOpened", {"owner": owner})


def deposited(stream, amount):
    return event(stream, "Deposited", {"amount": amount})


def withdrawn(stream, amount):
    return event(stream, "Withdrawn", {"amount": amount})


class AccountBalanceTest(unittest.TestCase):
    def test_describes_itself_like_the_rust_plugin(self):
        self.assertEqual(
            Harness(AccountBalance).describe(),
            {
                "name": "account-balance",
                "version": "0.1.0",
                "event_types": ["AccountOpened", "Deposited", "Withdrawn"],
                "queries": ["richest"],
                "indexes": [],
            },
        )

    def test_an_opened_account_starts_empty(self):
        h = Harness(AccountBalance).given([opened("account-1", "ann")])
        self.assertEqual(h.view("account-1"), {"owner": "ann", "balance": 0, "transactions": 0})

    def test_deposits_and_withdrawals_move_the_balance_and_count_as_transactions(self):
        h = Harness(AccountBalance).given(
            [opened("account-42", "ann"), deposited("account-42", 100), withdrawn("account-42", 25)]
        )
        self.assertEqual(h.view("account-42"), {"owner": "ann", "balance": 75, "transactions": 2})

    def test_documents_are_byte_for_byte_what_the_rust_plugin_stores(self):
        h = Harness(AccountBalance).given(
            [opened("account-1", "Zoë"), deposited("account-1", 100), deposited("account-2", 5)]
        )
        self.assertEqual(h.raw("account-1"), '{"owner":"Zoë","balance":100,"transactions":1}')
        self.assertEqual(h.raw("account-2"), '{"owner":null,"balance":5,"transactions":1}')

    def test_accounts_are_kept_apart_by_stream(self):
        h = Harness(AccountBalance).given(
            [
                opened("account-1", "ann"),
                opened("account-2", "bob"),
                deposited("account-1", 10),
                deposited("account-2", 20),
                deposited("account-1", 30),
            ]
        )
        self.assertEqual(h.view("account-1")["balance"], 40)
        self.assertEqual(h.view("account-2")["balance"], 20)
        self.assertEqual(h.keys(), ["account-1", "account-2"])

    def test_a_withdrawal_may_overdraw(self):
        h = Harness(AccountBalance).given([opened("account-1", "ann"), withdrawn("account-1", 5)])
        self.assertEqual(h.view("account-1")["balance"], -5)

    def test_money_moved_before_the_account_was_opened_still_counts(self):
        h = Harness(AccountBalance).given([deposited("account-7", 10)])
        self.assertEqual(h.view("account-7"), {"owner": None, "balance": 10, "transactions": 1})
        self.assertIsNone(h.when([opened("account-7", "cy")]))
        self.assertEqual(h.view("account-7"), {"owner": "cy", "balance": 10, "transactions": 1})

    def test_other_event_types_never_reach_the_view(self):
        h = Harness(AccountBalance).given(
            [opened("account-1", "ann"), event("account-1", "AccountFrozen", {"amount": 99})]
        )
        self.assertEqual(len(h.events), 2)
        self.assertEqual(h.view("account-1"), {"owner": "ann", "balance": 0, "transactions": 0})

    def test_fractional_amounts_are_refused_and_leave_the_balance_as_it_was(self):
        h = Harness(AccountBalance).given([opened("account-1", "ann"), deposited("account-1", 10)])
        for amount in (2.5, 10.0, "10", None, True):
            with self.subTest(amount=amount):
                error = h.when([deposited("account-1", amount)])
                self.assertEqual(error.index, 0)
                self.assertIn("64-bit integer", error.message)
                self.assertEqual(h.view("account-1")["balance"], 10)

    def test_a_failing_event_keeps_the_events_before_it(self):
        h = Harness(AccountBalance).given([opened("account-1", "ann")])
        error = h.when([deposited("account-1", 1), deposited("account-1", 2), deposited("account-1", 0.5)])
        self.assertEqual(error.index, 2)
        self.assertEqual(h.view("account-1"), {"owner": "ann", "balance": 3, "transactions": 2})

    def test_an_overflowing_balance_is_refused(self):
        h = Harness(AccountBalance).given([deposited("account-1", I64_MAX)])
        error = h.when([deposited("account-1", 1)])
        self.assertIn("overflows", error.message)
        self.assertEqual(h.view("account-1")["balance"], I64_MAX)

    def test_a_malformed_payload_is_refused(self):
        h = Harness(AccountBalance)
        self.assertEqual(h.when([event("account-1", "AccountOpened", {})]).index, 0)
        self.assertEqual(h.when([event("account-1", "Deposited", [1, 2])]).index, 0)
        self.assertEqual(h.keys(), [])

    def test_batches_of_any_size_give_the_same_balances(self):
        def history():
            return [
                (withdrawn if n % 5 == 0 else deposited)(f"account-{n % 4}", n) for n in range(50)
            ]

        whole = Harness(AccountBalance).given(history())
        for size in (1, 7):
            with self.subTest(batch_size=size):
                other = Harness(AccountBalance, batch_size=size).given(history())
                self.assertEqual(other.host.data, whole.host.data)

    def test_a_batch_costs_two_crossings_however_many_events_it_holds(self):
        h = Harness(AccountBalance).given([deposited(f"account-{n % 3}", n) for n in range(100)])
        self.assertEqual(h.host.crossings, 2)  # one get-many, one write-many

    def test_richest_lists_the_highest_balances_first(self):
        h = Harness(AccountBalance).given(
            [deposited("account-1", 10), deposited("account-2", 30), deposited("account-3", 30), withdrawn("account-4", 5)]
        )
        self.assertEqual(
            h.query("richest", limit=3),
            [
                {"account": "account-2", "balance": 30},
                {"account": "account-3", "balance": 30},
                {"account": "account-1", "balance": 10},
            ],
        )
        with self.assertRaises(prism.InvalidParams):
            h.query("richest", limit=101)


if __name__ == "__main__":
    unittest.main()
