"""Backlog drain benchmark: an outbox holding N signed readings (a hub away for days), the edge agent
as a real process, a real Mosquitto, and a plain paho subscriber standing in for the hub that
publishes the signed `committed` watermark. Measures readings/s from the first reading the hub
receives to the outbox empty, and checks they arrived in order, each once.

Run: .venv/bin/python bench/drain.py [--readings N] (default 100,000). The last line printed is one
JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.drain_harness import drain  # noqa: E402
from tests.mqtt_broker import Mosquitto  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hall-drain-") as tmp:
        broker = Mosquitto(Path(tmp) / "mosquitto")
        broker.start()
        try:
            started = time.monotonic()
            result = drain(Path(tmp) / "drain", broker.port, args.readings, timeout=600)
        finally:
            broker.stop()
    in_order = result.received == list(range(1, args.readings + 1))
    print(f"{args.readings} readings drained in {result.seconds:.1f} s "
          f"({result.per_second:,.0f} readings/s), in order and each once: {in_order}")
    print(json.dumps({"readings": args.readings, "seconds": round(result.seconds, 2),
                      "readings_per_s": round(result.per_second), "in_order_once": in_order,
                      "edge_peak_rss_mb": round(result.edge_peak_rss_mb, 1),
                      "total_s_with_fill": round(time.monotonic() - started, 1)}))
    return 0 if in_order else 1


if __name__ == "__main__":
    sys.exit(main())
