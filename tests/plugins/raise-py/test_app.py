"""The raising plugin counts per stream and refuses the batch at a `Poison` event."""

import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "guest-sdk", "python"))

from prism_projection import QueryError  # noqa: E402
from prism_projection.testing import Harness, event  # noqa: E402

from app import Raise  # noqa: E402


class RaiseTest(unittest.TestCase):
    def test_counts_every_event_type_per_stream(self):
        h = Harness(Raise).given([event("a", "X"), event("b", "Y"), event("a", "Z")])
        self.assertEqual(h.views(), {"a": {"count": 2}, "b": {"count": 1}})
        self.assertEqual(h.describe()["event_types"], [])

    def test_poison_refuses_the_batch_at_its_index(self):
        h = Harness(Raise).given([event("a", "X")])
        error = h.when([event("a", "X"), event("a", "Poison"), event("a", "X")])
        self.assertEqual(error.index, 1)
        self.assertIn("RuntimeError: poisoned event at position 3", error.message)
        self.assertEqual(h.view("a"), {"count": 2})  # the event before the poison, on its own

    def test_the_count_query_raises_for_poison(self):
        h = Harness(Raise).given([event("a", "X")])
        self.assertEqual(h.query("count", stream="a"), 1)
        with self.assertRaisesRegex(QueryError, "RuntimeError: poisoned query"):
            h.query("count", stream="Poison")


if __name__ == "__main__":
    unittest.main()
