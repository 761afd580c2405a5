"""Labeling overhead: how close does `distill label` get to what the teacher server allows?

    python benchmarks/labeling.py                  # delay 0.1 s, concurrency 1, 8, 64, 256; ~2 min
    python benchmarks/labeling.py --delay 0.05 --concurrency 1 16 128

The teacher is the fake OpenAI-compatible server of the tests (tests/fake_openai.py), in its own process on
127.0.0.1, answering every request after a fixed delay with logprobs. A perfect client would label concurrency / delay
rows per second; the gap is the labeler's own cost (the openai client, asyncio, parsing, the SQLite cache,
writing labels.jsonl) plus start-up (reading the input, one preflight request). Each concurrency level
gets enough distinct texts for ~3 s of ideal work and a fresh cache; then the largest level is run again
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
    t0, c0 = time.perf_counter(), time.process_time()
    m = label(cfg, out)
    m["wall_seconds"] = time.perf_counter() - t0
    m["cpu_seconds"] = time.process_time() - c0  # this process only: the labeler, not the fake server
    return m


SERVER = """
import sys, threading
sys.path.insert(0, sys.argv[1])
from tests.fake_openai import FakeOpenAI
with FakeOpenAI(delay=float(sys.argv[2])) as s:
    s.httpd.socket.listen(4096)  # socketserver's backlog of 5 drops connections at high concurrency
    # Headers and body leave in separate writes; with Nagle on, each answer then waits ~40 ms for a delayed ACK.
    s.httpd.RequestHandlerClass.disable_nagle_algorithm = True
    print(s.base_url, flush=True)
    threading.Event().wait()
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--delay", type=float, default=0.1, help="seconds the fake teacher waits before each answer")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 64, 256])
    ap.add_argument("--ideal-seconds", type=float, default=3.0, help="rows per level = this x the ideal rate")
    args = ap.parse_args()

    import subprocess
    import sys

    # The server runs in its own process, so its threads do not compete with the labeler for the GIL.
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(ROOT), str(args.delay)], stdout=subprocess.PIPE, text=True)
    url = server.stdout.readline().strip()
    results = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            write_texts(tmp / "one.jsonl", 1)
            run_once(url, tmp / "one.jsonl", 1, tmp / "warm.sqlite", tmp / "warm")  # imports, first connection
            # Fixed cost of a run, whatever its size: reading the input, the preflight request, writing outputs.
            fixed = run_once(url, tmp / "one.jsonl", 1, tmp / "fixed.sqlite", tmp / "fixed")["wall_seconds"] - args.delay
            for c in args.concurrency:
                ideal = c / args.delay
                n = max(30, int(ideal * args.ideal_seconds))
                texts = tmp / f"texts-{c}.jsonl"
                write_texts(texts, n)
                m = run_once(url, texts, c, tmp / f"cache-{c}.sqlite", tmp / f"run-{c}")
                wall = m["wall_seconds"]
                results.append({"concurrency": c, "rows": n, "seconds": wall, "rows_per_s": n / wall,
                                "rows_per_s_after_startup": n / max(1e-9, wall - fixed), "ideal_rows_per_s": ideal,
                                "cpu_ms_per_row": 1000 * m["cpu_seconds"] / n,
                                "teacher_calls": m["teacher_calls"], "failed": m["failed_requests"]})
                print(f"concurrency {c}: {n} rows in {wall:.2f} s", file=sys.stderr)
            # Again on the warm cache of the largest level: every answer from SQLite, no teacher call.
            c, n = args.concurrency[-1], results[-1]["rows"]
            m = run_once(url, tmp / f"texts-{c}.jsonl", c, tmp / f"cache-{c}.sqlite", tmp / f"rerun-{c}")
            cached = {"concurrency": c, "rows": n, "seconds": m["wall_seconds"], "rows_per_s": n / m["wall_seconds"],
                      "cpu_ms_per_row": 1000 * m["cpu_seconds"] / n,
                      "teacher_calls": m["teacher_calls"], "cached": m["cached"], "failed": m["failed_requests"]}
    finally:
        server.terminate()
        server.wait()

    rows = [[r["concurrency"], r["rows"], round(r["ideal_rows_per_s"]), round(r["rows_per_s"], 1),
             round(r["rows_per_s_after_startup"], 1), f"{100 * r['rows_per_s_after_startup'] / r['ideal_rows_per_s']:.0f}%",
             round(r["cpu_ms_per_row"], 2), r["teacher_calls"], r["failed"]] for r in results]
    rows.append([f"{c}, cached rerun", cached["rows"], "-", round(cached["rows_per_s"], 1), "-", "-",
                 round(cached["cpu_ms_per_row"], 2), cached["teacher_calls"], cached["failed"]])
    mach = machine()
    print(f"\nLabeling against a fake teacher on 127.0.0.1 that answers after {args.delay * 1000:.0f} ms. rows/s is end to "
          f"end; the next column leaves out the fixed start-up of a run ({fixed:.2f} s: reading the input, one "
          "preflight request, writing the run folder). Teacher calls include the preflight.\n")
    print(table(["concurrency", "rows", "ideal rows/s", "rows/s", "rows/s after start-up", "of ideal",
                 "labeler CPU ms/row", "teacher calls", "failed"], rows))
    print(f"\nmachine: {describe_machine(mach)}")
    path = save("labeling", {"delay_s": args.delay, "fixed_seconds": fixed, "levels": results, "cached_rerun": cached,
                             "machine": mach})
    print(f"results: {path}")


if __name__ == "__main__":
    main()
