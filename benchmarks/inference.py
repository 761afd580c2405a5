"""Inference: PyTorch vs ONNX fp32 vs ONNX int8 for the MiniLM student, side by side in one process.

    OMP_NUM_THREADS=2 python benchmarks/inference.py                       # MiniLM + a fresh 2-label head, ~2 min
    python benchmarks/inference.py --train-run artifacts/restaurant-reviews/train --threads 1

The ONNX files are made by `distill export` itself (so this measures what the product ships), from a train
run: the one given, or one built here from the bundled MiniLM with an untrained 2-label head (speed does
not depend on the head's weights). The texts are the bundled restaurant reviews, tokenized once; only the
model call is timed. The three engines take turns for several rounds and each keeps its best round, so a
burst of load from elsewhere on a shared machine hurts all of them alike instead of one.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from _common import OUT, ROOT, describe_machine, machine, save, table

TEXTS = ROOT / "pipelines" / "data" / "restaurant-reviews.csv"


def make_train_run(out: Path, texts: list[str]) -> Path:
    """A finished train run around the bundled MiniLM with a fresh 2-label head, as `distill train` writes it."""
    import torch

    from distill.train.model import load_student
    from distill.runs import finish_run, start_run

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train-run", type=Path, default=None, help="a finished train run (default: MiniLM + fresh head)")
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS") or 2))
    ap.add_argument("--texts", type=int, default=128, help="texts timed per round")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    import torch

    from distill.config import ExportConfig
    from distill.data import load_texts
    from distill.export import export
    from distill.runs import is_finished
    from distill.runtime import Predictor
    from distill.export.checks import TorchReference, time_engine, timing_feeds

    torch.set_num_threads(args.threads)
    texts = load_texts(TEXTS, "text")
    work = OUT / "inference"  # kept: the export takes minutes, the timing is what is re-run
    train_run = args.train_run or work / "train"
    export_run = work / ("export" if args.train_run is None else f"export-{Path(args.train_run).name}")
    if args.train_run is None and not is_finished(train_run):
        print("building the student (bundled MiniLM + fresh head)...", file=sys.stderr, flush=True)
        make_train_run(train_run, texts)
    if not is_finished(export_run):
        # max_accuracy_drop=100: an untrained head's int8 predictions may flip; accuracy is not what is measured.
        export(ExportConfig(model=str(train_run), quantize="int8", threads=args.threads, latency_texts=16,
                            max_accuracy_drop=100.0), export_run)
    ref = TorchReference(Path(train_run) / "model", 128)
    engines = {"PyTorch fp32": ref.logits}
    predictors = {name: Predictor(export_run, f, args.threads) for name, f in
                  (("ONNX fp32", "model.onnx"), ("ONNX int8", "model.int8.onnx"))}
    engines.update({name: p.logits for name, p in predictors.items()})
    sizes = {"PyTorch fp32": sum(p.stat().st_size for p in (Path(train_run) / "model").glob("*.safetensors")),
             "ONNX fp32": (export_run / "model.onnx").stat().st_size,
             "ONNX int8": (export_run / "model.int8.onnx").stat().st_size}
    feeds1, feeds32 = timing_feeds(predictors["ONNX fp32"].encode, texts, args.texts)
    tokens = sum(int(f["attention_mask"].sum()) for f in feeds1) / len(feeds1)
    padded32 = sum(f["input_ids"].size for f in feeds32) / sum(len(f["input_ids"]) for f in feeds32)
    best: dict[str, dict[str, float]] = {}
    for r in range(args.rounds):
        print(f"timing round {r + 1}/{args.rounds}", file=sys.stderr, flush=True)
        for name, run in engines.items():
            t = time_engine(run, feeds1, feeds32)
            ms1, ms32 = t["latency_ms_batch1"], 1000 / t["items_per_second_batch32"]
            old = best.get(name, {"ms1": float("inf"), "ms32": float("inf")})
            best[name] = {"ms1": min(old["ms1"], ms1), "ms32": min(old["ms32"], ms32)}

    base = best["PyTorch fp32"]
    rows = [[name, round(sizes[name] / 1e6, 1), round(b["ms1"], 2), round(base["ms1"] / b["ms1"], 2),
             round(b["ms32"], 3), round(base["ms32"] / b["ms32"], 2)] for name, b in best.items()]
    m = machine()
    print(f"\nMiniLM-L6 classifier, {args.texts} restaurant reviews ({tokens:.0f} tokens on average; batches of 32 "
          f"are grouped by length and padded to {padded32:.0f} tokens per text), {args.threads} thread(s), best of "
          f"{args.rounds} interleaved rounds; model call only\n")
    print(table(["engine", "size MB", "ms/text batch 1", "speed-up", "ms/text batch 32", "speed-up"], rows))
    print(f"\nmachine: {describe_machine(m)}; torch {torch.__version__}")
    path = save("inference", {"threads": args.threads, "texts": args.texts, "mean_tokens": tokens,
                              "padded_tokens_batch32": padded32, "rounds": args.rounds,
                              "train_run": str(args.train_run) if args.train_run else "MiniLM + fresh head",
                              "size_bytes": sizes, "ms_per_text": best, "machine": m, "torch": torch.__version__})
    print(f"results: {path}")


if __name__ == "__main__":
    main()
