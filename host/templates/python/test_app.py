import unittest

from prism_projection.testing import Harness, event

from app import {{type_name}}


class {{type_name}}Test(unittest.TestCase):
    def test_counts_the_events_of_each_stream(self):
        h = Harness({{type_name}}).given(
            [
                event("order-1", "OrderPlaced", {"total": 30}),
                event("order-1", "OrderShipped", {}),
                event("order-2", "OrderPlaced", {"total": 5}),
            ]
        )
        self.assertEqual(h.view("order-1"), {"events": 2, "last_type": "OrderShipped"})
        self.assertEqual(h.query("events", stream="order-2"), 1)


if __name__ == "__main__":
    unittest.main()
