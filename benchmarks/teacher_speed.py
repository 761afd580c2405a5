"""Labeling speed of the embedded teacher: llama.cpp server settings x client concurrency, one after the other.

    OMP_NUM_THREADS=2 python benchmarks/teacher_speed.py                 # the settings below, 160 sentences each
    python benchmarks/teacher_speed.py --n 100 '8|{"parallel": 8}' '4|{"parallel": 4, "threads": 1}'

Each setting is CONCURRENCY|{server settings as JSON}: model (a GGUF path; default: the embedded teacher's),
parallel (slots), threads, threads_batch, poll (llama.cpp's busy-wait level, 0-100), n_batch, n_ubatch, kv_unified,
n_threads_http, cache_ram_mib, flash_attn_type (-1 auto, 0 off, 1 on). The server is the embedded teacher's (the
same model, context per slot and swa_full as distill/label/server.py), started here with those settings; the client
is `distill label` itself (--base-url, completions, the quality benchmark's 6 examples and instructions) on short
Pang & Lee sentences, other sentences for each setting and a throwaway answer cache, so rows/s is the teacher's
speed (server start not included). Prints rows/s, the share of prompt tokens llama.cpp served from its prefix
cache, and the CPU ms per row of the server and of the client. `--perf` also samples the server process with Linux
`perf` while it labels (99 Hz per thread, no call graphs: llama.cpp's symbols are in xllamacpp's library) and
prints where its CPU time goes, by function and by group (GROUPS: the weights times the prompt's tokens, the output
projection over the vocabulary, attention, OpenMP's waiting, sampling, tokenizing).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import signal
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
    p.model.path, p.hostnames, p.port = opts.get("model", str(default_model_path())), ["127.0.0.1"], port
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


# Function-name patterns (matched on "function [library]") -> what the time is spent on, first match wins. ggml's
# kernels carry their shapes in their names: a gemm multiplies a weight matrix by the prompt's new tokens; a
# quantized vec_dot (a matrix-vector product) is one token's column, which with a prompt-only request is the output
# projection of the last token over the whole vocabulary (the f16 vec_dot is attention over the f16 KV cache).
GROUPS = [("attention (flash attention over the KV cache, rope)", r"flash_attn|soft_max|rope|vec_dot_f16"),
          ("weights x the prompt's new tokens (gemm)", r"gemm|mul_mat|tiled_|quantize_row|repack"),
          ("weights x one token: the output projection over the vocabulary (vec_dot)", r"vec_dot|gemv"),
          ("OpenMP threads waiting for each other (libgomp)", r"libgomp|barrier|sched_yield|futex"),
          ("sampling and log-probabilities", r"sampl|probabilities|nth_element|sort"),
          ("tokenizing and text (prompt, detokenize, JSON)", r"tokeni|utf8|unicode|json|regex"),
          ("elementwise ops (norm, glu, add, mul, get_rows, copy)", r"norm|glu|gelu|add|mul|get_rows|cpy|dup|scale|unary|binary"),
          ("exp and the rest of libm", r"libm\.so"),
          ("kernel / libc / other", r".")]


def perf_start(pid: int, path: Path) -> subprocess.Popen | None:
    """`perf record` on the server process (all its threads) until perf_stop; None when perf is missing."""
    if shutil.which("perf") is None:
        print("--perf: no `perf` on PATH (linux-tools / linux-perf); labeling without the profile", file=sys.stderr)
        return None
    return subprocess.Popen(["perf", "record", "-F", "99", "-p", str(pid), "-o", str(path), "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def perf_stop(perf: subprocess.Popen, path: Path, top: int = 25) -> dict:
    """Stop perf, then the share of samples per function (self time) and per GROUPS entry."""
    perf.send_signal(signal.SIGINT)
    perf.wait(timeout=60)
    out = subprocess.run(["perf", "report", "-i", str(path), "--stdio", "--no-children", "--sort", "dso,symbol",
                          "--percent-limit", "0.05"], capture_output=True, text=True).stdout
    funcs = []
    for line in out.splitlines():
        m = re.match(r"\s*([\d.]+)%\s+(\S+)\s+\[[.k]\]\s+(.+?)\s*$", line)
        if m:
            name = re.split(r"\s{2,}", m.group(3))[0].replace("(anonymous namespace)::", "")  # no IPC columns
            funcs.append((f"{name} [{m.group(2)}]", float(m.group(1))))
    groups: dict[str, float] = {}
    for name, share in funcs:
        group = next(g for g, pat in GROUPS if re.search(pat, name, re.I))
        groups[group] = round(groups.get(group, 0.0) + share, 2)
    return {"functions": funcs[:top], "groups": sorted(groups.items(), key=lambda kv: -kv[1])}


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("settings", nargs="*", default=DEFAULT)
    ap.add_argument("--n", type=int, default=160, help="sentences per setting")
    ap.add_argument("--perf", action="store_true", help="profile the server with Linux perf while it labels")
    ap.add_argument("--serve", nargs=2, metavar=("PORT", "JSON"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.serve:
        return serve(int(a.serve[0]), json.loads(a.serve[1]))

    from corpora import pang_lee, split
    from quality import INSTRUCTIONS, LABELS

    from distill.config import Example, LabelConfig
    from distill.label import label

    examples, _, pool, _ = split(pang_lee(OUT / "data"), 0, a.n * len(a.settings), 6, 0)
    rows, profiles = [], {}
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
                perf = perf_start(proc.pid, Path(tmp) / "perf.data") if a.perf else None
                load, t0, c0 = os.getloadavg()[0], os.times(), cpu_seconds(proc.pid)
                m = label(cfg, Path(tmp) / "out")
                t1, c1 = os.times(), cpu_seconds(proc.pid)
                if perf is not None:
                    profiles[spec] = perf_stop(perf, Path(tmp) / "perf.data")
        finally:
            proc.terminate()
            proc.wait()
        rows.append([spec, m["rows_per_second"], round(100 * m["cached_prompt_tokens"] / max(1, m["prompt_tokens"]), 1),
                     round(m["prompt_tokens"] / a.n), round(1000 * (c1 - c0) / a.n, 1),
                     round(1000 * (t1.user + t1.system - t0.user - t0.system) / a.n, 1), round(load, 2)])
        print(rows[-1], "prefix as tokens:", m.get("prefix_as_tokens"), file=sys.stderr, flush=True)
    print(table(["concurrency|server", "rows/s", "% prompt from cache", "prompt tokens/row", "server CPU ms/row",
                 "client CPU ms/row", "load avg"], rows))
    for spec, prof in profiles.items():
        print(f"\nwhere the server's CPU time goes, {spec} (perf, self time, share of samples):")
        print(table(["group", "%"], [list(g) for g in prof["groups"]]))
        print(table(["function", "%"], [[name[:90], share] for name, share in prof["functions"]]))
    print(describe_machine(machine()))
    save("teacher_speed", {"n": a.n, "rows": rows, "profiles": profiles, "machine": machine()})


if __name__ == "__main__":
    main()
