"""
wirecost: how long the codec takes on its worst cases (many of the
smallest payloads or substructures in one message), at growing sizes, so
that a quadratic decoder shows as a time that quadruples when the count
doubles.  tests/test_wire_properties.py's CostTests check that these
messages decode; this prints how long they take.

    python3 bench/wirecost.py [--repeat 5]

It asserts nothing.
"""

import argparse
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from ikedtx.wire.message import Message  # noqa: E402


def vendorIds(count):
    chain = b"\x2b\x00\x00\x04" * count
    chain = chain[:-4] + b"\x00\x00\x00\x04"
    header = b"I" * 8 + b"R" * 8 + bytes([43, 0x20, 37, 0]) + bytes(4) + (28 + len(chain)).to_bytes(4, "big")
    return header + chain


def attributes(count):
    body = b"\x80\x0e\x00\x80" * count
    transform = b"\x00\x00" + (8 + len(body)).to_bytes(2, "big") + b"\x01\x00\x00\x0c" + body
    proposal = b"\x00\x00" + (8 + len(transform)).to_bytes(2, "big") + b"\x01\x01\x00\x01" + transform
    sa = b"\x00\x00" + (4 + len(proposal)).to_bytes(2, "big") + proposal
    header = b"I" * 8 + b"R" * 8 + bytes([33, 0x20, 34, 8]) + bytes(4) + (28 + len(sa)).to_bytes(4, "big")
    return header + sa


CASES = [("empty Vendor ID payloads", vendorIds), ("TV attributes in one transform", attributes)]
COUNTS = [2000, 4000, 8000, 16000]


def best(data, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        Message.decode(data).encode()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per size; the best is printed")
    args = parser.parse_args(argv)
    print("| case | " + " | ".join("%d" % n for n in COUNTS) + " | ratio 16000/8000 |")
    print("|---|" + "---:|" * (len(COUNTS) + 1))
    for name, make in CASES:
        seconds = [best(make(n), args.repeat) for n in COUNTS]
        print("| %s (decode + encode, ms) | %s | %.2f |" % (
            name, " | ".join("%.1f" % (1000 * s) for s in seconds), seconds[-1] / seconds[-2]))


if __name__ == "__main__":
    main()
