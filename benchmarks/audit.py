"""Audit and active labeling: does the audit find the teacher's mistakes, and does choosing rows beat chance?

    flock /tmp/distill-cpu.lock env OMP_NUM_THREADS=2 python benchmarks/audit.py                 # tables, LR student
    flock /tmp/distill-cpu.lock env OMP_NUM_THREADS=2 python benchmarks/audit.py --finetune       # + MiniLM on key cells

Corpus and split: benchmarks/quality.py's (Pang & Lee sentences, seed 0: 6 few-shot examples, 2,000 sentences
the embedded teacher labels, 1,000 test sentences with true labels). The teacher's answers come from the answer
cache the quality benchmark filled (same prompt, examples and teacher, so the same cache keys): run that first,
or this script asks the teacher itself (~20 min on 2 cores). True labels are used only to score.

1. Audit. `distill audit` on the 2,000 teacher labels; a teacher error is a row whose teacher label is not its
   true label. Precision of the top 50/100/200 suspects (share that really are errors) against random rows
   (mean of 3 seeds), the lowest teacher confidence alone, and the proxy alone. Then a person's review is
   simulated: the top 100/200 suspects, or 100/200 random rows, get their true labels, and a student is trained.
2. Active labeling. `distill label --budget N` over the 2,000 sentences (all answers cached: 0 teacher calls),
   --selection active vs random, N = 250/500/1,000, seeds 0/1/2; the student is scored on the 1,000 test sentences.

The student in the grids is the cheap one: logistic regression on frozen MiniLM embeddings (mean-pooled, the
audit proxy's features), trained on the labels of the cell; one fit takes under a second, so every cell and seed
is measured. Fine-tuning MiniLM takes minutes per cell on 2 cores, so `--finetune` runs it (distill train, the
defaults, soft labels) on the key cells only: no correction vs top-200 suspects vs 200 random rows, and active
vs random at 500 calls (seed 0).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from _common import OUT, describe_machine, machine, save, table

try:  # the quality benchmark's corpus and split (moved to corpora.py by the quality work)
    from corpora import CORPORA, split

    def load_rows() -> list[tuple[str, str]]:
        return CORPORA["pang-lee"][0](OUT / "data")
except ImportError:
    from quality import corpus, split

    def load_rows() -> list[tuple[str, str]]:
        return corpus(OUT / "data")


LABELS = ["negative", "positive"]
INSTRUCTIONS = "Classify the sentiment of the movie review sentence."
TOPS = (50, 100, 200)
BUDGETS = (250, 500, 1000)
SEEDS = (0, 1, 2)
STUDENT_C = 4.0  # the frozen-embedding student's regularisation (the proxy keeps its own default)


def label_config(p: dict, **extra):
    from distill.config import Example, LabelConfig

    # Exactly the quality benchmark's task, so every request hits its cached answer.
    return LabelConfig(input=str(p["texts"]), labels=LABELS, instructions=INSTRUCTIONS, teacher="local", concurrency=4,
                       timeout=900, examples=[Example(text=t, label=lab) for t, lab in p["examples"]], **extra)


def prepare(args) -> dict:
    work = OUT / f"audit-{args.pool or args.train}-{args.test}-s{args.seed}"
    work.mkdir(parents=True, exist_ok=True)
    examples, train_rows, test_rows = split(load_rows(), args.train, args.test, args.shots, args.seed)[:3]
    train_rows = train_rows[: args.pool or None]  # the quality run labels in this order: its first answers come first
    texts, gold = work / "texts.jsonl", work / "test-gold.csv"
    texts.write_text("".join(json.dumps({"text": t}) + "\n" for t, _ in train_rows), encoding="utf-8")
    import csv

    with open(gold, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([("text", "label"), *test_rows])
    return {"work": work, "examples": examples, "train": train_rows, "test": test_rows, "texts": texts, "gold": gold}


def finished(out: Path) -> bool:
    return (out / "manifest.json").is_file()


def student_accuracy(x: np.ndarray, y: np.ndarray, x_test: np.ndarray, y_test: np.ndarray) -> float:
    from distill.audit.proxy import fit_predict

    return float((fit_predict(x, y, x_test, len(LABELS), c=STUDENT_C).argmax(1) == y_test).mean())


def finetune(args, label_run: Path, out: Path, gold: Path) -> dict:
    from distill.config import TrainConfig
    from distill.train import train

    if finished(out):
        return json.loads((out / "metrics.json").read_text())
    shutil.rmtree(out, ignore_errors=True)
    return train(TrainConfig(data=str(label_run), gold=str(gold), seed=args.seed, student=args.student, max_steps=args.max_steps), out)


def corrected_run(src: Path, dst: Path, fix: dict[str, str]) -> Path:
    """A copy of the label run in which the rows in `fix` carry a person's (true) label, as --corrections writes them."""
    if finished(dst):
        return dst
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst)
    rows = [json.loads(x) for x in (src / "labels.jsonl").read_text(encoding="utf-8").splitlines()]
    for r in rows:
        if r["text"] in fix:
            r.update(teacher_label=r["label"], label=fix[r["text"]], probs={lab: float(lab == fix[r["text"]]) for lab in LABELS},
                     confidence=1.0, source="human")
    (dst / "labels.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    cfg = json.loads((dst / "config.json").read_text())
    cfg["settings"]["cache"] = str(dst / "no-human-labels.sqlite")  # keep the benchmark's corrections out of the shared cache
    (dst / "config.json").write_text(json.dumps(cfg), encoding="utf-8")
    return dst


def audit_part(args, p: dict, emb: dict[str, np.ndarray]) -> dict:
    from distill.audit.confident import combine, precision_at, rank_suspects
    from distill.audit.proxy import out_of_fold
    from distill.audit.stage import audit
    from distill.config import AuditConfig
    from distill.label import label

    work = p["work"]
    t0 = time.perf_counter()
    lm = label(label_config(p), work / "label") if not finished(work / "label") else json.loads((work / "label" / "metrics.json").read_text())
    label_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()  # the audit as a user runs it: embedding included
    am = audit(AuditConfig(label_run=str(work / "label")), work / "audit")
    audit_seconds = time.perf_counter() - t0
    records = [json.loads(x) for x in (work / "label" / "labels.jsonl").read_text(encoding="utf-8").splitlines()]
    truth = dict(p["train"])
    rows = [r for r in records if r["label"] in LABELS]
    texts = [r["text"] for r in rows]
    given = np.array([LABELS.index(r["label"]) for r in rows])
    true = np.array([LABELS.index(truth[t]) for t in texts])
    wrong = set(np.flatnonzero(given != true).tolist())
    teacher = np.array([[r["probs"][lab] for lab in LABELS] for r in rows])
    x = np.stack([emb[t] for t in texts])
    proxy = out_of_fold(x, given, len(LABELS), 5, 0)

    def order(probs: np.ndarray) -> list[int]:
        return np.argsort(rank_suspects(probs, given)["rank"]).tolist()

    rankings = {
        "lowest teacher confidence": order(teacher),
        "proxy alone (out-of-fold, confident learning)": order(proxy),
        "proxy + teacher, equal weights": order(combine(proxy, teacher, 0.5)),
        "proxy 0.25 + teacher 0.75 (distill audit default)": order(combine(proxy, teacher, 0.75)),
    }
    rand = [random.Random(s).sample(range(len(rows)), len(rows)) for s in SEEDS]
    prec = [["random rows (mean of 3 seeds)", *[statistics.mean(precision_at(r, wrong, n) for r in rand) for n in TOPS]]]
    prec += [[name, *[precision_at(o, wrong, n) for n in TOPS]] for name, o in rankings.items()]
    suspects = [json.loads(x) for x in (work / "audit" / "suspects.jsonl").read_text(encoding="utf-8").splitlines()]
    flagged_wrong = sum(truth[s["text"]] != s["teacher_label"] for s in suspects)

    # A person's review: the first n rows of a ranking get their true labels.
    x_test = np.stack([emb[t] for t, _ in p["test"]])
    y_test = np.array([LABELS.index(lab) for _, lab in p["test"]])
    default = rankings["proxy 0.25 + teacher 0.75 (distill audit default)"]

    def fixed_accuracy(picked: list[int]) -> float:
        y = given.copy()
        y[picked] = true[picked]
        return student_accuracy(x, y, x_test, y_test)

    fix = [["none (teacher labels as they are)", len(wrong), fixed_accuracy([]), None]]
    for n in (100, 200):
        fix.append([f"top {n} suspects", len(wrong - set(default[:n])), fixed_accuracy(default[:n]), None])
        accs = [fixed_accuracy(r[:n]) for r in rand]
        fix.append([f"{n} random rows (mean of 3 seeds)", statistics.mean(len(wrong - set(r[:n])) for r in rand), statistics.mean(accs), None])
    fix.append([f"all {len(rows):,} true labels (reference)", 0, fixed_accuracy(list(range(len(rows)))), None])
    base = work / "label"
    # Fine-tuned later (main), most telling first: the teacher's labels, the top 200 fixed, 200 random rows fixed.
    jobs = [("fix", i, run) for i, run in (
        (0, base),
        (3, corrected_run(base, work / "label-top200", {texts[i]: truth[texts[i]] for i in default[:200]})),
        (4, corrected_run(base, work / "label-random200", {texts[i]: truth[texts[i]] for i in rand[0][:200]})))]
    return {"jobs": [(kind, i, str(run)) for kind, i, run in jobs],"precision": prec, "fix": fix, "teacher_errors": len(wrong), "rows": len(rows), "flagged": len(suspects),
            "flagged_precision": flagged_wrong / len(suspects) if suspects else None, "label_metrics": lm, "audit_metrics": am,
            "label_seconds": round(label_seconds, 1), "audit_seconds": round(audit_seconds, 1)}


@contextlib.contextmanager
def cache_only_endpoint(cfg, out):
    """The embedded teacher's identity without starting its server (~15-80 s a start on a busy machine, 18 cells):
    every answer is in the cache, and a request that is not would fail loudly against port 9 (checked below)."""
    from distill.label.client import Endpoint
    from distill.label.server import default_model_path, model_identity

    model = default_model_path()
    yield Endpoint("http://127.0.0.1:9/v1", model.name, "completions", model_identity(model), timeout=5, max_retries=0)


def active_part(args, p: dict, emb: dict[str, np.ndarray]) -> dict:
    import distill.label.stage as stage
    from distill.label import label

    stage.open_endpoint = cache_only_endpoint

    work = p["work"]
    truth = dict(p["train"])
    x_test = np.stack([emb[t] for t, _ in p["test"]])
    y_test = np.array([LABELS.index(lab) for _, lab in p["test"]])
    cells: dict[tuple[str, int], list[dict]] = {}
    for budget in args.budgets:
        for selection in ("random", "active"):
            for seed in SEEDS:
                out = work / "active" / f"{selection}-{budget}-s{seed}"
                if not finished(out):
                    out.mkdir(parents=True, exist_ok=True)
                    for f in ("embeddings.npy", "embeddings.json"):  # the same pool: embed once, not 18 times
                        shutil.copy(work / "emb" / f, out / f)
                    t0 = time.perf_counter()
                    # overwrite: the folder holds only the copied embeddings (check_out refuses foreign files otherwise)
                    label(label_config(p, budget=budget, selection=selection, selection_seed=seed), out, overwrite=True)
                    print(f"{out.name}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
                m = json.loads((out / "metrics.json").read_text())
                assert m["teacher_calls"] == 0 and not m["errors"], f"{out}: not every answer was cached"
                rows = [json.loads(x) for x in (out / "labels.jsonl").read_text(encoding="utf-8").splitlines()]
                got = [r for r in rows if r["label"] in LABELS]
                x = np.stack([emb[r["text"]] for r in got])
                y = np.array([LABELS.index(r["label"]) for r in got])
                cell = {"labeled": len(got), "teacher_calls": m["teacher_calls"], "cached": m["cached"],
                        "teacher_errors": sum(r["label"] != truth[r["text"]] for r in got),
                        "accuracy": student_accuracy(x, y, x_test, y_test), "folder": str(out)}
                cells.setdefault((selection, budget), []).append(cell)
    mid = args.budgets[len(args.budgets) // 2]
    jobs = [("active", f"{s}-{mid}", cells[(s, mid)][0]["folder"]) for s in ("random", "active")]
    return {"cells": {f"{s}-{b}": v for (s, b), v in cells.items()}, "jobs": jobs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train", type=int, default=2000)
    ap.add_argument("--test", type=int, default=1000)
    ap.add_argument("--shots", type=int, default=6)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--finetune", action="store_true", help="also fine-tune MiniLM on the key cells (minutes each)")
    ap.add_argument("--student", default="minilm", help="the fine-tuned student (--finetune)")
    ap.add_argument("--max-steps", type=int, default=None, help="cap the fine-tuning steps (a quick look)")
    ap.add_argument("--pool", type=int, default=None, help="use only the first N training sentences (those the teacher answered)")
    ap.add_argument("--budgets", type=int, nargs="+", default=list(BUDGETS), help="teacher calls per active-labeling cell")
    ap.add_argument("--skip-active", action="store_true")
    args = ap.parse_args()

    from distill.audit.proxy import cached_embeddings, store_embeddings

    p = prepare(args)
    started, load_start = time.perf_counter(), os.getloadavg()
    pool = list(dict.fromkeys(t for t, _ in p["train"]))
    emb: dict[str, np.ndarray] = {}
    full = split(load_rows(), args.train, args.test, args.shots, args.seed)[1:3]  # embedded once for every --pool
    for name, part in (("train", full[0]), ("test", full[1])):
        texts = [t for t, _ in part]
        emb.update(zip(texts, cached_embeddings(texts, "minilm", OUT / f"audit-embeddings-{name}-{args.train}-{args.test}-s{args.seed}")))
    store_embeddings(p["work"] / "emb", pool, "minilm", np.stack([emb[t] for t in pool]))  # what the label runs choose from
    result = {"audit": audit_part(args, p, emb)}
    if not args.skip_active:
        result["active"] = active_part(args, p, emb)
    print_tables(args, result, started, load_start)
    if args.finetune:  # minutes per cell: after the cheap tables, and the tables again after each one
        work = p["work"]
        for kind, where, run in result["audit"]["jobs"] + result.get("active", {}).get("jobs", []):
            acc = finetune(args, Path(run), work / "finetuned" / Path(run).name, p["gold"]).get("gold_accuracy")
            if kind == "fix":
                result["audit"]["fix"][where][3] = acc
            else:
                result["active"]["cells"][where][0]["finetuned"] = acc
            print_tables(args, result, started, load_start)


def print_tables(args, result: dict, started: float, load_start: tuple) -> None:
    m = machine()
    a = result["audit"]
    lm = a["label_metrics"]
    print(f"\nAudit of {a['rows']} teacher labels (teacher accuracy on them {1 - a['teacher_errors'] / a['rows']:.1%}, "
          f"{a['teacher_errors']} errors; {lm.get('teacher_calls')} teacher calls this run). distill audit flagged {a['flagged']} "
          f"rows, {a['flagged_precision']:.1%} of them real errors; audit {a['audit_seconds']} s.\n")
    print(table(["ranking", *[f"precision@{n}" for n in TOPS]], [[r[0], *[round(100 * v, 1) for v in r[1:]]] for r in a["precision"]]))
    print("\nStudent accuracy on 1,000 test sentences after a person corrects some rows\n")
    print(table(["rows corrected", "teacher errors left", "LR on frozen MiniLM %", "fine-tuned MiniLM % (random rows: seed 0)"],
                [[r[0], r[1], round(100 * r[2], 1), None if r[3] is None else round(100 * r[3], 1)] for r in a["fix"]]))
    if "active" in result:
        print("\nActive labeling: student accuracy (LR on frozen MiniLM) on 1,000 test sentences, mean ± sd over seeds 0-2\n")
        body = []
        for b in args.budgets:
            row = [b]
            for s in ("random", "active"):
                cells = result["active"]["cells"][f"{s}-{b}"]
                accs = [100 * c["accuracy"] for c in cells]
                row.append(f"{statistics.mean(accs):.1f} ± {statistics.stdev(accs):.1f}")
                row.append(round(statistics.mean(100 * c["teacher_errors"] / c["labeled"] for c in cells), 1))
            ft = [result["active"]["cells"][f"{s}-{b}"][0].get("finetuned") for s in ("random", "active")]
            row.append(" / ".join("-" if v is None else f"{100 * v:.1f}" for v in ft))
            body.append(row)
        print(table(["teacher calls", "random %", "teacher errors in random rows %", "active %", "teacher errors in active rows %",
                     "fine-tuned MiniLM random / active % (seed 0)"], body))
    load = f"load average {load_start[0]:.1f} at the start, {os.getloadavg()[0]:.1f} at the end"
    print(f"\nmachine: {describe_machine(m)}; {time.perf_counter() - started:.0f} s; {load}")
    print(f"results: {save('audit', {**result, 'machine': m, 'args': vars(args), 'load': load})}")


if __name__ == "__main__":
    main()
