"""The Python SDK decodes every document the log accepts to the value the Rust SDK decodes.

The corpus (tests/data/json-corpus.jsonl at the repository root) is generated and
checked by the host's tests (`host/src/log/json_corpus.rs`), which explain the
canonical form compared here: each accepted document carries the canonical form of
what the Rust SDK decoded.
Run from guest-sdk/python: `python -m unittest discover -s tests`."""

import decimal
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from prism_projection import Event  # noqa: E402

CORPUS = os.path.join(os.path.dirname(__file__), "..", "..", "..", "tests", "data", "json-corpus.jsonl")


def canonical(value):
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value) if -(2**63) <= value < 2**64 else canonical_double(float(value))
    if isinstance(value, float):
        return canonical_double(value)
    if isinstance(value, str):
        return canonical_string(value)
    if isinstance(value, list):
        return "[" + ",".join(canonical(v) for v in value) + "]"
    members = sorted((canonical_string(k), canonical(v)) for k, v in value.items())
    return "{" + ",".join(f"{k}:{v}" for k, v in members) + "}"


def canonical_string(text):
    out = ['"']
    data = text.encode("utf-16-be")
    for i in range(0, len(data), 2):
        unit = (data[i] << 8) | data[i + 1]
        if unit == 0x22:
            out.append('\\"')
        elif unit == 0x5C:
            out.append("\\\\")
        elif 0x20 <= unit <= 0x7E:
            out.append(chr(unit))
        else:
            out.append(f"\\u{unit:04x}")
    out.append('"')
    return "".join(out)


def canonical_double(d):
    if d == int(d) and abs(d) < 2**64:
        return str(int(d))
    sign, digits, exponent = decimal.Decimal(repr(d)).normalize().as_tuple()
    return ("-" if sign else "") + "".join(map(str, digits)) + f"e{exponent}"


def corpus():
    with open(CORPUS, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


class CorpusTest(unittest.TestCase):
    def test_accepted_documents_decode_as_in_rust(self):
        entries = [e for e in corpus() if e["accepted"]]
        self.assertGreater(len(entries), 100)
        for entry in entries:
            event = Event(1, "corpus", 0, "Corpus", entry["text"])
            with self.subTest(text=entry["text"][:200]):
                self.assertEqual(canonical(event.data), entry["canonical"])

    def test_canonical_numbers(self):
        self.assertEqual(canonical(json.loads("[-0, 1.0, 1e19, 1e20, 1.5, 18446744073709551616]")),
                         "[0,1,10000000000000000000,1e20,15e-1,18446744073709552e3]")


if __name__ == "__main__":
    unittest.main()
