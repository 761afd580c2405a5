"""Labeling overhead: how close does `distill label` get to what the teacher server allows?

    python benchmarks/labeling.py                  # delay 0.1 s, concurrency 1, 8, 64, 256; ~1 min
    python benchmarks/labeling.py --delay 0.05 --concurrency 1 16 128

The teacher is the fake OpenAI-compatible server of the tests (tests/fake_openai.py) on 127.0.0.1, which
answers every request after a fixed delay with logprobs. A perfect client would label concurrency / delay
rows per second; the gap is the labeler's own cost (the openai client, asyncio, parsing, the SQLite cache,
writing labels.jsonl) plus start-up (reading the input, one preflight request). Each concurrency level
gets enough distinct texts for ~2 s of ideal work and a fresh cache; then the largest level is run again
on its warm cache: every answer comes from SQLite, and the teacher is not called.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from _common import ROOT, describe_machine, machine, save, table


def write_texts(path: Path, n: int) -> None:
    words = ["lovely", "awful", "great", "cold", "friendly", "rude", "tasty", "bland"]
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):  # distinct texts: the cache is keyed by content, duplicates would be free
            f.write(json.dumps({"text": f"review {i}: the soup was {words[i % len(words)]} and the bill fair"}) + "\n")


def run_once(server_url: str, texts: Path, concurrency: int, cache: Path, out: Path) -> dict:
    from distill.config import LabelConfig
    from distill.label import label

    cfg = LabelConfig(input=str(texts), labels=["positive", "negative"], teacher="fake-teacher", base_url=server_url,
                      concurrency=concurrency, cache=str(cache), max_retries=0, timeout=60)
    t0 = time.perf_counter()
    m = label(cfg, out)
    m["wall_seconds"] = time.perf_counter() - t0
    return m


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--delay", type=float, default=0.1, help="seconds the fake teacher waits before each answer")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 64, 256])
    ap.add_argument("--ideal-seconds", type=float, default=2.0, help="rows per level = this x the ideal rate")
    args = ap.parse_args()

    import sys

    sys.path.insert(0, str(ROOT))
    from tests.fake_openai import FakeOpenAI

    results = []
    with tempfile.TemporaryDirectory() as tmp, FakeOpenAI(delay=args.delay) as server:
        tmp = Path(tmp)
        for c in args.concurrency:
            ideal = c / args.delay
            n = max(20, int(ideal * args.ideal_seconds))
            texts = tmp / f"texts-{c}.jsonl"
            write_texts(texts, n)
            cache = tmp / f"cache-{c}.sqlite"
            m = run_once(server.base_url, texts, c, cache, tmp / f"run-{c}")
            rate = n / m["wall_seconds"]
            results.append({"concurrency": c, "rows": n, "seconds": m["wall_seconds"], "rows_per_s": rate, "ideal_rows_per_s": ideal,
                            "share_of_ideal": rate / ideal, "teacher_calls": m["teacher_calls"], "failed": m["failed_requests"]})
            print(f"concurrency {c}: {n} rows in {m['wall_seconds']:.2f} s", file=sys.stderr)
        # Again on the warm cache of the largest level: no teacher call should happen.
        c = args.concurrency[-1]
        before = len(server.texts)
        n = results[-1]["rows"]
        m = run_once(server.base_url, tmp / f"texts-{c}.jsonl", c, tmp / f"cache-{c}.sqlite", tmp / f"rerun-{c}")
        cached = {"concurrency": c, "rows": n, "seconds": m["wall_seconds"], "rows_per_s": n / m["wall_seconds"],
                  "teacher_calls": m["teacher_calls"], "labeling_requests_seen_by_server": len(server.texts) - before,
                  "cached": m["cached"]}

    rows = [[r["concurrency"], r["rows"], round(r["ideal_rows_per_s"]), round(r["rows_per_s"], 1),
             f"{100 * r['share_of_ideal']:.0f}%", r["teacher_calls"]] for r in results]
    rows.append([f"{c} (cached rerun)", cached["rows"], "-", round(cached["rows_per_s"], 1), "-", cached["teacher_calls"]])
    mach = machine()
    print(f"\nLabeling against a fake teacher on 127.0.0.1 that answers after {args.delay * 1000:.0f} ms "
          "(end to end: reading the input, preflight, labeling, writing the run folder)\n")
    print(table(["concurrency", "rows", "ideal rows/s", "rows/s", "of ideal", "teacher calls"], rows))
    print(f"\nmachine: {describe_machine(mach)}")
    path = save("labeling", {"delay_s": args.delay, "levels": results, "cached_rerun": cached, "machine": mach})
    print(f"results: {path}")


if __name__ == "__main__":
    main()
