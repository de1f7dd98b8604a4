"""Tests of the Python SDK itself: the batch engine, the cached view and the harness.
Run from guest-sdk/python: `python -m unittest discover -s tests`."""

import json
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import prism_projection as prism  # noqa: E402
from prism_projection.testing import HandleFailed, Harness, InMemoryHost, event  # noqa: E402


class Counts(prism.Projection):
    """Counts events per stream; refuses `Bad`; answers `count` and `streams`."""

    name = "counts"
    version = "1.2.3"

    def keys(self, event):
        return [event.stream_id]

    def handle(self, view, event):
        if event.event_type == "Bad":
            raise ValueError("bad event")
        if event.event_type == "Forget":
            view.delete(event.stream_id)
            return
        prism.log.info(f"counting {event.stream_id}")
        view.update(event.stream_id, lambda d: {**d, "count": d["count"] + 1}, default={"count": 0})

    @prism.query
    def count(self, view, params):
        if "stream" not in params:
            raise prism.InvalidParams("stream is required")
        doc = view.get(params["stream"])
        return 0 if doc is None else doc["count"]

    @prism.query("streams")
    def list_streams(self, view, params):
        return [k for k, _ in view.scan(prefix=params.get("prefix", ""), limit=int(params.get("limit", "100")))]

    @prism.query("broken")
    def broken(self, view, params):
        view.put("x", 1)


class ScanProbe(prism.Projection):
    """Writes in a batch, then records what `scan` sees in the same batch."""

    name = "scan-probe"
    version = "0"
    seen = None

    def handle(self, view, event):
        for op in event.data["ops"]:
            if op[0] == "put":
                view.put(op[1], op[2])
            elif op[0] == "delete":
                view.delete(op[1])
            else:
                ScanProbe.seen = view.scan(op[1], op[2], op[3])


VIEW_KEYS = os.path.join(os.path.dirname(__file__), "..", "..", "..", "tests", "data", "view-keys.json")


def view_key_cases():
    """The accepted and the refused keys of tests/data/view-keys.json."""
    with open(VIEW_KEYS, encoding="utf-8") as f:
        cases = json.load(f)

    def keys(kind):
        return [case["key"] * case.get("times", 1) for case in cases[kind]]

    return keys("accepted"), keys("refused")


class RuntimeTest(unittest.TestCase):
    def test_description_lists_event_types_and_queries(self):
        h = Harness(Counts)
        self.assertEqual(
            h.describe(),
            {"name": "counts", "version": "1.2.3", "event_types": [], "queries": ["broken", "count", "streams"], "indexes": []},
        )

    def test_indexes_are_declared_with_their_fields(self):
        class Products(prism.Projection):
            name = "products"
            indexes = (prism.Index("by-stock", [("stock", "number")], prefix="product-"),)

            def handle(self, view, event):
                pass

        self.assertEqual(
            Harness(Products).describe()["indexes"],
            [{"name": "by-stock", "fields": [("stock", "number")], "unique": False, "prefix": "product-"}],
        )
        with self.assertRaises(ValueError):
            prism.Index("bad", [("x", "colour")])

    def test_a_batch_is_one_get_many_and_one_write_many(self):
        h = Harness(Counts).given([event(f"s-{n % 5}", "Seen") for n in range(200)])
        self.assertEqual(h.host.crossings, 2)
        self.assertEqual(h.view("s-0"), {"count": 40})

    def test_a_failing_event_is_reported_by_index_and_its_batch_writes_nothing(self):
        host = InMemoryHost()
        runtime = prism._runtime.Runtime(Counts(), host)
        events = [Harness(Counts).append("s", t) for t in ("Seen", "Seen", "Bad")]
        error = runtime.handle(events)
        self.assertEqual(error, prism.HandleError(2, "ValueError: bad event"))
        self.assertEqual(host.data, {})

    def test_given_raises_when_the_history_does_not_apply(self):
        with self.assertRaises(HandleFailed) as caught:
            Harness(Counts).given([event("s", "Bad")])
        self.assertEqual(caught.exception.error.index, 0)

    def test_view_keys_follow_the_shared_rule(self):
        # tests/data/view-keys.json: the cases the host and every SDK test alike.
        accepted, refused = view_key_cases()
        for key in accepted:
            prism.check_key(key)
            InMemoryHost().write_many([(key, "1")])
        for key in refused:
            with self.assertRaises(prism.ViewError, msg=repr(key)[:40]):
                prism.check_key(key)
            with self.assertRaises(prism.ViewError, msg=repr(key)[:40]):
                InMemoryHost().write_many([(key, "1")])

    def test_a_key_the_host_would_refuse_fails_the_event_that_wrote_it(self):
        h = Harness(Counts)
        for key in ("", "x" * 1025, "é" * 513):
            error = h.when([event("ok", "Seen"), event(key, "Seen")])
            self.assertEqual(error.index, 1)
            self.assertIn("invalid-key", error.message)
        self.assertIsNone(h.when([event("é" * 512, "Seen")]))
        # `_` is reserved in the HTTP API's paths, not in the view.
        self.assertIsNone(h.when([event("_under", "Seen")]))
        self.assertEqual(h.view("_under"), {"count": 1})

    def test_a_query_declared_twice_is_refused_when_described(self):
        class Twice(Counts):
            @prism.query("count")
            def other_count(self, view, params):
                return 0

        with self.assertRaisesRegex(TypeError, "query 'count' is declared twice"):
            Harness(Twice)

    def test_a_write_the_host_refuses_fails_the_batch_without_an_index(self):
        class Refusing(InMemoryHost):
            def write_many(self, writes):
                raise prism.ViewError("invalid-json", "no")

        runtime = prism._runtime.Runtime(Counts(), Refusing())
        error = runtime.handle([Harness(Counts).append("s", "Seen")])
        self.assertEqual(error, prism.HandleError(None, "write refused: invalid-json: no"))

    def test_reads_see_the_batch_s_own_writes_and_deletes(self):
        h = Harness(Counts).given([event("s", "Seen"), event("s", "Forget"), event("s", "Seen")])
        self.assertEqual(h.view("s"), {"count": 1})

    def test_undeclared_event_types_never_reach_the_projection(self):
        class OnlySeen(Counts):
            event_types = ["Seen"]

        h = Harness(OnlySeen).given([event("s", "Seen"), event("s", "Bad"), event("s", "Seen")])
        self.assertEqual(h.view("s"), {"count": 2})
        self.assertEqual([e.position for e in h.events], [1, 2, 3])

    def test_events_decode_their_data_and_metadata(self):
        e = Harness(Counts).append("s", "Seen", {"a": [1, 2]}, {"user": "ann"})
        self.assertEqual((e.data, e.metadata, e.stream_version, e.position), ({"a": [1, 2]}, {"user": "ann"}, 0, 1))

    def test_logs_reach_the_host(self):
        h = Harness(Counts).given([event("s", "Seen")])
        self.assertEqual(h.logs, [("info", "counting s")])

    def test_update_never_mutates_the_default(self):
        default = {"count": 0}
        h = Harness(Counts).given([event("a", "Seen"), event("b", "Seen")])
        self.assertEqual(default, {"count": 0})
        self.assertEqual(h.views(), {"a": {"count": 1}, "b": {"count": 1}})


class ScanTest(unittest.TestCase):
    def scan_after(self, stored, ops):
        h = Harness(ScanProbe)
        for key, value in stored.items():
            h.host.data[key] = prism.dumps(value)
        h.given([event("s", "Ops", {"ops": ops})])
        return ScanProbe.seen

    def test_scan_merges_unflushed_puts_and_deletes_in_key_order(self):
        stored = {"a": 1, "b": 2, "c": 3, "d": 4}
        seen = self.scan_after(stored, [["put", "bb", 22], ["delete", "b"], ["delete", "c"], ["scan", "a", None, 3]])
        self.assertEqual(seen, [("a", 1), ("bb", 22), ("d", 4)])

    def test_scan_respects_end_and_limit_with_pending_writes_past_the_host_page(self):
        stored = {f"k{n}": n for n in range(10)}
        seen = self.scan_after(stored, [["put", "k95", 95], ["delete", "k0"], ["scan", "k", "k9", 3]])
        self.assertEqual(seen, [("k1", 1), ("k2", 2), ("k3", 3)])
        seen = self.scan_after(stored, [["put", "k10", 10], ["scan", "k1", "k2", 5]])
        self.assertEqual(seen, [("k1", 1), ("k10", 10)])


class QueryTest(unittest.TestCase):
    def setUp(self):
        self.h = Harness(Counts).given([event("order-1", "Seen"), event("order-2", "Seen"), event("user-1", "Seen")])

    def test_queries_read_the_view(self):
        self.assertEqual(self.h.query("count", stream="order-1"), 1)
        self.assertEqual(self.h.query("streams", prefix="order-"), ["order-1", "order-2"])
        self.assertEqual(self.h.query("streams", limit=1), ["order-1"])

    def test_query_errors_say_which_kind(self):
        with self.assertRaises(prism.InvalidParams):
            self.h.query("count")
        with self.assertRaises(prism._runtime.UnknownQuery):
            self.h.query("nope")
        with self.assertRaises(prism.QueryError) as caught:
            self.h.query("broken")
        self.assertIn("read-only", str(caught.exception))
        self.assertEqual(caught.exception.kind, "failed")


class ExportTest(unittest.TestCase):
    def test_export_outside_a_component_returns_the_class_unchanged(self):
        self.assertIs(prism.export(Counts), Counts)


if __name__ == "__main__":
    unittest.main()
