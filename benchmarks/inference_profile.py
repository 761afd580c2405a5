"""Where the int8 model's time goes at batch 1, by input length and by operator: what stands between the
Predictor and a given multiple of PyTorch eager.

    OMP_NUM_THREADS=2 python benchmarks/inference_profile.py            # the inference benchmark's export, ~2 min
    python benchmarks/inference_profile.py --export DIR --lengths 8,24,64,128

For each length: PyTorch eager fp32 and the export's int8 file through onnxruntime with the Predictor's own
session (distill/runtime.py: the same threads and disabled fusions), the model call alone (no tokenizer),
alternating in one process, best of --rounds; then one more onnxruntime pass under its profiler, summed by
operator type. The profiler adds a few microseconds to every node, so its shares are shares of a slightly
longer run; the ms columns come from the unprofiled passes. Needs the export of benchmarks/inference.py
(run that first) or --export DIR and the train run it was made from (--train-run).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

from _common import OUT, describe_machine, machine, save, table



def feeds_for(tokens: int, names: list[str]) -> dict[str, Any]:
    """Inputs of exactly `tokens` tokens: [CLS] ... [SEP] over word ids, as the tokenizer would give."""
    import numpy as np

    ids = np.array([[101] + [2000 + (i * 37) % 5000 for i in range(tokens - 2)] + [102]], dtype=np.int64)
    full = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
    return {n: full[n] for n in names}


def best_ms(call, reps: int) -> float:
    t = time.perf_counter()
    for _ in range(reps):
        call()
    return (time.perf_counter() - t) / reps * 1e3


def op_profile(model: Path, threads: int, feeds: dict[str, Any], reps: int) -> dict[str, float]:
    """Microseconds per run by operator type, from onnxruntime's profiler (a second Predictor session, profiling)."""
    from distill.runtime import session

    sess = session(model, threads, profile_prefix=str(OUT / "inference-profile-ort"))
    for _ in range(reps):
        sess.run(None, feeds)
    path = Path(sess.end_profiling())
    per_op: dict[str, float] = collections.Counter()
    for e in json.loads(path.read_text()):
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            per_op[e["args"]["op_name"]] += e["dur"] / reps
    path.unlink()
    return dict(per_op)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--export", type=Path, default=OUT / "inference" / "export")
    ap.add_argument("--train-run", type=Path, default=OUT / "inference" / "train")
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS") or 2))
    ap.add_argument("--lengths", default="8,16,24,48,128")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    if not (args.export / "model.int8.onnx").is_file():
        raise SystemExit(f"{args.export}/model.int8.onnx: missing; run `python benchmarks/inference.py` first")

    import torch
    from transformers import AutoModelForSequenceClassification

    from distill.runtime import session

    torch.set_num_threads(args.threads)
    net = AutoModelForSequenceClassification.from_pretrained(args.train_run / "model").eval()
    sess = session(args.export / "model.int8.onnx", args.threads)
    names = [i.name for i in sess.get_inputs()]
    rows, ops_by_length, result = [], {}, {}
    for tokens in [int(x) for x in args.lengths.split(",")]:
        feeds = feeds_for(tokens, names)
        tfeeds = {k: torch.from_numpy(v) for k, v in feeds.items()}
        reps = max(20, 4000 // tokens)

        def eager(tfeeds: dict = tfeeds) -> None:
            with torch.inference_mode():
                net(**tfeeds)

        def onnx(feeds: dict = feeds) -> None:
            sess.run(["logits"], feeds)

        times: dict[str, list[float]] = {"torch": [], "onnx": []}
        for call in (eager, onnx):  # warm-up
            best_ms(call, 5)
        for _ in range(args.rounds):
            times["torch"].append(best_ms(eager, max(5, reps // 5)))
            times["onnx"].append(best_ms(onnx, reps))
        t, o = min(times["torch"]), min(times["onnx"])
        ops = op_profile(args.export / "model.int8.onnx", args.threads, feeds, reps)
        total = sum(ops.values())
        ops_by_length[tokens] = {k: round(100 * v / total, 1) for k, v in sorted(ops.items(), key=lambda kv: -kv[1])}
        top = ", ".join(f"{k} {v:.0f}%" for k, v in list(ops_by_length[tokens].items())[:5])
        rows.append([tokens, round(t, 2), round(o, 3), round(t / o, 2), top])
        result[tokens] = {"torch_ms": t, "onnx_ms": o, "ratio": t / o, "profiled_us": total, "ops_share": ops_by_length[tokens],
                          "torch_rounds": times["torch"], "onnx_rounds": times["onnx"]}
    load = os.getloadavg()
    print(f"\nbatch 1, model call only (no tokenizer), {args.threads} thread(s), best of {args.rounds} alternating rounds; "
          f"load average {load[0]:.2f}. Export: {args.export}\n")
    print(table(["tokens", "PyTorch eager ms", "int8 onnxruntime ms", "ratio", "int8 time by operator (profiled)"], rows))
    print(f"\nmachine: {describe_machine(machine())}; torch {torch.__version__}")
    print(f"results: {save('inference-profile', {'threads': args.threads, 'export': str(args.export), 'lengths': result, 'rounds': args.rounds, 'loadavg': load, 'machine': machine(), 'median_ratio': statistics.median(r['ratio'] for r in result.values())})}")


if __name__ == "__main__":
    main()
