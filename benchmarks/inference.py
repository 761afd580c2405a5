"""Inference end to end: `distill predict`'s Predictor (int8 and fp32 ONNX) against PyTorch eager,
transformers.pipeline and optimum's ORTModelForSequenceClassification, side by side in one run.

    OMP_NUM_THREADS=2 python benchmarks/inference.py                       # MiniLM + a fresh 2-label head, ~4 min
    python benchmarks/inference.py --train-run artifacts/restaurant-reviews/train --threads 1
    python benchmarks/inference.py --target avx512      # the export's AVX-512 VNNI preset (its own export folder)
    python benchmarks/inference.py --compare-export DIR  # also another export folder's int8 file, side by side

Every engine is timed from text to answer: tokenization, the model, and (for the Predictor) softmax and the
per-text result dicts. Batch 1 is one call per text (mean, p50 and p99 latency); batch 32 is the same texts in
the batches Predictor.predict makes (at most 32 texts of similar token counts, runtime.token_batches), which
every engine gets.
The engines take turns for several rounds and each keeps its best round, so a burst of load from elsewhere
on a shared machine hurts all of them alike. Each engine's round runs in a fresh worker process (after one
untimed pass), as a service runs one engine, so no engine shares a process with another's idle threads
(`--one-process` measures the old way; on 2026-12-03 the two agreed within their spread). Cold start is a
fresh Python process: imports, model load and one answer (`distill predict --text ...` itself for the Predictor), best of --cold runs.

The ONNX files are made by `distill export` itself (this measures what the product ships), from a train
run: the one given, or one built here from the bundled MiniLM with an untrained 2-label head (speed does
not depend on the head's weights).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

from _common import OUT, ROOT, describe_machine, machine, save, table

TEXTS = ROOT / "pipelines" / "data" / "restaurant-reviews.csv"


def make_train_run(out: Path, texts: list[str]) -> Path:
    """A finished train run around the bundled MiniLM with a fresh 2-label head, as `distill train` writes it."""
    import torch

    from distill.runs import finish_run, start_run
    from distill.train.model import load_student

    torch.manual_seed(0)
    labels = ["negative", "positive"]
    model, tokenizer = load_student("minilm", labels)
    settings = {"student": "minilm", "max_length": 128}
    start_run(out, "train", settings)
    model.save_pretrained(out / "model", safe_serialization=True)
    tokenizer.save_pretrained(out / "model")
    with open(out / "val.jsonl", "w", encoding="utf-8") as f:
        for i, t in enumerate(texts[:64]):
            f.write(json.dumps({"text": t, "label": labels[i % 2]}) + "\n")
    finish_run(out, "train", settings, {"note": "untrained head, for timing only"}, "# benchmark student\n")
    return out


def optimum_folder(model_dir: Path, export_run: Path, work: Path) -> Path:
    """A folder optimum can load: the model's HF config.json (the export's config.json is distill's run
    config), the export's tokenizer and its int8 file."""
    work.mkdir(parents=True, exist_ok=True)
    for src in [model_dir / "config.json", *export_run.glob("*token*"), *export_run.glob("vocab*"), export_run / "model.int8.onnx"]:
        dst = work / src.name
        if src.is_file() and not dst.exists():
            dst.symlink_to(src.resolve())
    return work


# name -> (code run in a fresh process up to its first answer, for the cold start). {model}/{export} filled in.
COLD = {
    "PyTorch eager fp32": "import torch; from transformers import AutoModelForSequenceClassification as M, AutoTokenizer as T; "
    "torch.set_num_threads({threads}); t = T.from_pretrained('{model}'); m = M.from_pretrained('{model}').eval(); "
    "torch.inference_mode()(lambda: m(**t(['the soup was cold'], return_tensors='pt')).logits)()",
    "transformers.pipeline fp32": "import torch; from transformers import pipeline; torch.set_num_threads({threads}); "
    "pipeline('text-classification', model='{model}', device='cpu')(['the soup was cold'])",
    "optimum ORTModel int8": "import onnxruntime as ort; from transformers import AutoTokenizer as T; "
    "from optimum.onnxruntime import ORTModelForSequenceClassification as M; o = ort.SessionOptions(); "
    "o.intra_op_num_threads = {threads}; m = M.from_pretrained('{optimum}', file_name='model.int8.onnx', session_options=o); "
    "t = T.from_pretrained('{optimum}'); m(**t(['the soup was cold'], return_tensors='pt'))",
}


def cold_start(code: str | list[str], runs: int) -> float:
    """Seconds from a fresh interpreter to its first answer, best of `runs`."""
    cmd = code if isinstance(code, list) else [sys.executable, "-c", code]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TRANSFORMERS_VERBOSITY": "error"}
    best = float("inf")
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        best = min(best, time.perf_counter() - t)
    return best


ENGINES = ["PyTorch eager fp32", "transformers.pipeline fp32", "optimum ORTModel int8", "distill Predictor fp32",
           "distill Predictor int8"]


def build_engines(train_run: Path, export_run: Path, threads: int, names: list[str]) -> dict[str, tuple[Callable, Callable]]:
    """name -> (one call on a batch of texts, a pass over `groups` at batch 32), for the engines named only: a
    worker process loads nothing but the engine it times."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    from distill.runtime import Predictor

    model_dir = train_run / "model"
    tok = AutoTokenizer.from_pretrained(model_dir)
    engines: dict[str, tuple[Callable, Callable]] = {}
    if {"PyTorch eager fp32", "transformers.pipeline fp32"} & set(names):
        model = AutoModelForSequenceClassification.from_pretrained(model_dir, use_safetensors=True).eval()

        def eager(batch: list[str]) -> Any:
            with torch.inference_mode():
                return model(**tok(batch, padding=True, truncation=True, max_length=128, return_tensors="pt")).logits.softmax(-1)

        pipe = pipeline("text-classification", model=model, tokenizer=tok, device="cpu", truncation=True, max_length=128)
        engines["PyTorch eager fp32"] = (eager, lambda groups: [eager(g) for g in groups])
        engines["transformers.pipeline fp32"] = (pipe, lambda groups: [pipe(g, batch_size=32) for g in groups])
    if "optimum ORTModel int8" in names:
        try:
            import onnxruntime as ort
            from optimum.onnxruntime import ORTModelForSequenceClassification

            opts = ort.SessionOptions()
            opts.intra_op_num_threads = threads
            folder = optimum_folder(model_dir, export_run, OUT / "inference" / "optimum")
            om = ORTModelForSequenceClassification.from_pretrained(folder, file_name="model.int8.onnx", session_options=opts)

            def optimum(batch: list[str]) -> Any:
                return om(**tok(batch, padding=True, truncation=True, max_length=128, return_tensors="pt")).logits.softmax(-1)

            engines["optimum ORTModel int8"] = (optimum, lambda groups: [optimum(g) for g in groups])
        except ImportError as e:  # optimum is in the export extra; the others still compare
            print(f"optimum not available ({e}); skipping it", file=sys.stderr)
    for name, file in (("distill Predictor fp32", "model.onnx"), ("distill Predictor int8", "model.int8.onnx")):
        if name in names:
            p = Predictor(export_run, file, threads)
            engines[name] = (p.predict, lambda groups, p=p: p.predict([t for g in groups for t in g], batch_size=32))
    return {n: engines[n] for n in names if n in engines}


def time_round(one: Callable, pass32: Callable, texts: list[str], groups: list[list[str]], clock: Callable[[], float]
               ) -> tuple[list[float], float]:
    """(ms of each batch-1 call, ms per text at batch 32) for one pass over the texts."""
    ms1 = []
    for t in texts:
        s = clock()
        one([t])
        ms1.append(1000 * (clock() - s))
    s = clock()
    pass32(groups)
    return ms1, 1000 * (clock() - s) / len(texts)


def batch32(export_run: Path, texts: list[str]) -> tuple[list[int], list[list[int]], list[list[str]]]:
    """Token counts, and the batches Predictor.predict makes (at most 32 texts of similar token counts), which
    every engine gets at batch 32."""
    from distill.runtime import Predictor, token_batches

    lengths = [len(e.ids) for e in Predictor(export_run).unpadded.encode_batch(texts)]
    batches = token_batches(lengths, 32)
    return lengths, batches, [[texts[i] for i in idx] for idx in batches]


def worker(args: argparse.Namespace, texts: list[str]) -> None:
    """One engine in a process of its own: a whole untimed pass first (kernels chosen, buffers allocated for
    every length), then one timed pass, printed as JSON."""
    engines = build_engines(args.train_run, args.export_run, args.threads, [args.worker])
    if args.worker not in engines:  # optimum not installed: the others still compare
        print(json.dumps(None))
        return
    one, pass32 = engines[args.worker]
    groups = batch32(args.export_run, texts)[2]
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    time_round(one, pass32, texts, groups, clock)
    ms1, ms32 = time_round(one, pass32, texts, groups, clock)
    print(json.dumps({"ms1": ms1, "ms32": ms32}))


def in_worker(name: str, args: argparse.Namespace, train_run: Path, export_run: Path) -> tuple[list[float], float] | None:
    """time_round for one engine in a fresh process (None when the engine is not installed)."""
    cmd = [sys.executable, __file__, "--worker", name, "--train-run", str(train_run), "--export-run", str(export_run),
           "--threads", str(args.threads), "--texts", str(args.texts), "--clock", args.clock]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TRANSFORMERS_VERBOSITY": "error"}
    out = subprocess.run(cmd, check=True, env=env, capture_output=True, text=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    return None if result is None else (result["ms1"], result["ms32"])


def main() -> None:
    from distill.export.quantization import PRESETS  # the export's --target names

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train-run", type=Path, default=None, help="a finished train run (default: MiniLM + fresh head)")
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS") or 2))
    ap.add_argument("--texts", type=int, default=128, help="texts timed per round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--cold", type=int, default=2, help="fresh processes per engine for the cold start (0: skip)")
    ap.add_argument("--reexport", action="store_true", help="export again even when a finished export is kept")
    ap.add_argument("--target", default="avx2", choices=list(PRESETS),
                    help="the export's --target (avx512: AVX-512 VNNI)")
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                    help="cpu: this process's CPU time instead of wall time (on a machine others load; use with --threads 1)")
    ap.add_argument("--one-process", action="store_true",
                    help="time every engine in this one process (how rounds before 2026-12-03 ran) instead of one "
                    "fresh worker process per engine and round")
    ap.add_argument("--compare-export", type=Path, action="append", default=[], metavar="DIR",
                    help="another finished export folder: its int8 file through the Predictor is timed in the same rounds "
                    "(an export before a change against the one after)")
    ap.add_argument("--worker", choices=ENGINES, help=argparse.SUPPRESS)  # internal: time one engine, print JSON
    ap.add_argument("--export-run", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()

    import torch

    from distill.config import ExportConfig
    from distill.data import load_texts
    from distill.export import export
    from distill.runs import is_finished, read_json
    torch.set_num_threads(args.threads)
    texts = load_texts(TEXTS, "text")[: args.texts]
    if args.worker:
        return worker(args, texts)
    work = OUT / "inference"  # kept: the export takes minutes, the timing is what is re-run
    train_run = args.train_run or work / "train"
    suffix = "" if args.target == "avx2" else f"-{args.target}"  # avx2 keeps the folder and file names of before
    export_run = work / (("export" if args.train_run is None else f"export-{Path(args.train_run).name}") + suffix)
    if args.train_run is None and not is_finished(train_run):
        print("building the student (bundled MiniLM + fresh head)...", file=sys.stderr, flush=True)
        make_train_run(train_run, load_texts(TEXTS, "text"))
    if args.reexport or not is_finished(export_run):
        # max_accuracy_drop=100: an untrained head's int8 predictions may flip; accuracy is not what is measured.
        export(ExportConfig(model=str(train_run), quantize="int8", target=args.target, threads=args.threads, latency_texts=16,
                            max_accuracy_drop=100.0), export_run)
    lengths, batches, groups = batch32(export_run, texts)
    padded = sum(len(b) * max(lengths[i] for i in b) for b in batches) / len(texts)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    # (row name, engine, export folder): the engines, then the Predictor's int8 on each --compare-export folder.
    specs = [(name, name, export_run) for name in ENGINES]
    specs += [(f"distill Predictor int8, {d.name}", "distill Predictor int8", d) for d in args.compare_export]
    if args.one_process:
        engines = build_engines(Path(train_run), export_run, args.threads, ENGINES)
        for row, name, folder in specs[len(ENGINES):]:
            engines[row] = build_engines(Path(train_run), folder, args.threads, [name])[name]
        for one, pass32 in engines.values():  # warm-up: first runs allocate and pick kernels
            one(texts[:1])
            pass32(groups[:1])
    best: dict[str, dict[str, Any]] = {}
    for r in range(args.rounds):
        print(f"timing round {r + 1}/{args.rounds}", file=sys.stderr, flush=True)
        for name, engine, folder in specs:
            if args.one_process:
                timed = time_round(*engines[name], texts, groups, clock) if name in engines else None
            else:
                timed = in_worker(engine, args, Path(train_run), folder)
            if timed is None:
                continue
            ms1, ms32 = timed
            old = best.get(name)
            if old is None or statistics.mean(ms1) < old["ms1"]:
                q = statistics.quantiles(ms1, n=100)
                best[name] = {**(old or {}), "ms1": statistics.mean(ms1), "p50": q[49], "p99": q[98]}
            best[name]["ms32"] = min(best[name].get("ms32", float("inf")), ms32)

    model_dir = Path(train_run) / "model"
    fill = {"threads": args.threads, "model": model_dir, "optimum": work / "optimum", "export": export_run}
    cold = {name: COLD[name].format(**fill) for name in best if name in COLD}
    cold["distill Predictor int8"] = [str(Path(sys.executable).parent / "distill"), "predict", str(export_run), "--text", "the soup was cold"]
    cold_s = {name: cold_start(code, args.cold) for name, code in cold.items()} if args.cold else {}

    base = best["PyTorch eager fp32"]
    sizes = {"PyTorch": sum(p.stat().st_size for p in model_dir.glob("*.safetensors")),
             "fp32": (export_run / "model.onnx").stat().st_size, "int8": (export_run / "model.int8.onnx").stat().st_size}
    sizes.update({f"distill Predictor int8, {d.name}": (d / "model.int8.onnx").stat().st_size for d in args.compare_export})
    rows = [[name, round(sizes[name if name in sizes else "int8" if "int8" in name else "fp32" if "Predictor fp32" in name else "PyTorch"] / 1e6, 1),
             b["ms1"], b["p50"], b["p99"], round(base["ms1"] / b["ms1"], 2), round(1000 / b["ms32"]),
             round(base["ms32"] / b["ms32"], 2), round(cold_s[name], 2) if name in cold_s else None]
            for name, b in best.items()]
    meta = read_json(export_run / "labels.json")
    tokens = statistics.mean(lengths)
    load = os.getloadavg()
    print(f"\nMiniLM-L6 classifier, {len(texts)} restaurant reviews ({tokens:.0f} tokens on average; {len(batches)} batches "
          f"of at most 32, {padded:.0f} tokens per text with padding), {args.threads} thread(s), {args.clock} clock, best of "
          f"{args.rounds} interleaved rounds ({'one process' if args.one_process else 'a worker process per engine and round'}), tokenization included; load average before cold starts "
          f"{load[0]:.2f}. Export: --target {args.target}, graph {'optimized' if meta.get('graph_optimized') else 'plain'}, "
          f"int8 recipe {meta.get('quantization', {}).get('recipe')}\n")
    print(table(["engine", "MB", "b1 ms mean", "p50", "p99", "speed-up b1", "texts/s b32", "speed-up b32", "cold start s"], rows))
    print(f"\nmachine: {describe_machine(machine())}; torch {torch.__version__}")
    path = save("inference" + suffix, {"threads": args.threads, "target": args.target, "clock": args.clock, "texts": len(texts), "one_process": args.one_process,
                       "mean_tokens": tokens, "padded_tokens_batch32": padded, "rounds": args.rounds,
                       "compare_exports": [str(d) for d in args.compare_export], "train_run": str(args.train_run) if args.train_run else "MiniLM + fresh head",
                       "export": meta, "size_bytes": sizes, "results": best, "cold_start_s": cold_s,
                       "loadavg": load, "machine": machine(), "torch": torch.__version__})
    print(f"results: {path}")


if __name__ == "__main__":
    main()
