"""Labeling speed of the embedded teacher: llama.cpp server settings x client concurrency, one after the other.

    OMP_NUM_THREADS=2 python benchmarks/teacher_speed.py                 # the settings below, 160 sentences each
    python benchmarks/teacher_speed.py --n 100 '8|{"parallel": 8}' '4|{"parallel": 4, "threads": 1}'

Each setting is CONCURRENCY|{server settings as JSON}: parallel (slots), threads, threads_batch, poll (llama.cpp's
busy-wait level, 0-100), n_batch, n_ubatch, kv_unified, n_threads_http, cache_ram_mib, flash_attn_type (-1 auto, 0
off, 1 on). The server is the embedded teacher's (the same model, context per slot and swa_full as
distill/label/server.py), started here with those settings; the client is `distill label` itself (--base-url,
completions, the quality benchmark's 6 examples and instructions) on short Pang & Lee sentences, other sentences
for each setting and a throwaway answer cache, so rows/s is the teacher's speed (server start not included). Prints
rows/s, the share of prompt tokens llama.cpp served from its prefix cache, and the CPU ms per row of the server and
of the client.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from _common import OUT, ROOT, describe_machine, machine, save, table

DEFAULT = ['8|{"parallel": 8}', '4|{"parallel": 4}', '2|{"parallel": 2}', '8|{"parallel": 8, "threads": 1}',
           '8|{"parallel": 8, "poll": 0}', '16|{"parallel": 16}', '8|{"parallel": 8, "kv_unified": true}']


def serve(port: int, opts: dict) -> None:
    """The embedded teacher's server with any of llama.cpp's CommonParams (runs in a child process)."""
    import signal

    import xllamacpp as xlc

    from distill.label.server import CONTEXT_PER_SLOT, default_model_path

    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    p = xlc.CommonParams()
    p.model.path, p.hostnames, p.port = str(default_model_path()), ["127.0.0.1"], port
    p.n_parallel = opts.get("parallel", 4)
    p.n_ctx = CONTEXT_PER_SLOT * p.n_parallel
    p.swa_full = True
    for k in ("n_batch", "n_ubatch", "n_threads_http", "kv_unified", "cache_ram_mib", "flash_attn_type"):
        if k in opts:
            setattr(p, k, opts[k])
    if "threads" in opts:
        p.cpuparams.n_threads = opts["threads"]
        p.cpuparams_batch.n_threads = opts.get("threads_batch", opts["threads"])
    if "poll" in opts:
        p.cpuparams.poll = p.cpuparams_batch.poll = opts["poll"]
    server = xlc.Server(p)  # noqa: F841  (serves from its own threads while this process lives)
    while True:
        time.sleep(3600)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("settings", nargs="*", default=DEFAULT)
    ap.add_argument("--n", type=int, default=160, help="sentences per setting")
    ap.add_argument("--serve", nargs=2, metavar=("PORT", "JSON"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.serve:
        return serve(int(a.serve[0]), json.loads(a.serve[1]))

    from corpora import pang_lee, split
    from quality import INSTRUCTIONS, LABELS

    from distill.config import Example, LabelConfig
    from distill.label import label

    examples, _, pool, _ = split(pang_lee(OUT / "data"), 0, a.n * len(a.settings), 6, 0)
    rows = []
    for k, spec in enumerate(a.settings):
        conc, _, js = spec.partition("|")
        port = 18800 + k
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        proc = subprocess.Popen([sys.executable, __file__, "--serve", str(port), js or "{}"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            while True:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
                    break
                except OSError:
                    time.sleep(0.2)
            with tempfile.TemporaryDirectory() as tmp:
                src = Path(tmp) / "s.csv"
                with open(src, "w", newline="", encoding="utf-8") as f:
                    csv.writer(f).writerows([["text"], *([t] for t, _ in pool[k * a.n : (k + 1) * a.n])])
                cfg = LabelConfig(input=str(src), labels=LABELS, instructions=INSTRUCTIONS["pang-lee"], teacher="gemma",
                                  base_url=f"http://127.0.0.1:{port}/v1", endpoint="completions", concurrency=int(conc),
                                  examples=[Example(text=t, label=lab) for t, lab in examples], cache=str(Path(tmp) / "c.sqlite"))
                load, t0, c0 = os.getloadavg()[0], os.times(), cpu_seconds(proc.pid)
                m = label(cfg, Path(tmp) / "out")
                t1, c1 = os.times(), cpu_seconds(proc.pid)
        finally:
            proc.terminate()
            proc.wait()
        rows.append([spec, m["rows_per_second"], round(100 * m["cached_prompt_tokens"] / max(1, m["prompt_tokens"]), 1),
                     round(m["prompt_tokens"] / a.n), round(1000 * (c1 - c0) / a.n, 1),
                     round(1000 * (t1.user + t1.system - t0.user - t0.system) / a.n, 1), round(load, 2)])
        print(rows[-1], "prefix as tokens:", m.get("prefix_as_tokens"), file=sys.stderr, flush=True)
    print(table(["concurrency|server", "rows/s", "% prompt from cache", "prompt tokens/row", "server CPU ms/row",
                 "client CPU ms/row", "load avg"], rows))
    print(describe_machine(machine()))
    save("teacher_speed", {"n": a.n, "rows": rows, "machine": machine()})


if __name__ == "__main__":
    main()
