"""`distill audit`: a fake teacher flips a known set of labels; the audit must rank them on top. Corrections
from a person win over the teacher in later label and train runs; a review teacher re-asks the suspects.

The proxy reads the bundled MiniLM's frozen embeddings (a random tiny BERT cannot tell the toy sentiments
apart): ~2 s per audit on one core.
"""

import csv
import json
import random
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from distill.audit.confident import combine, label_issues, precision_at, rank_suspects, thresholds
from distill.cli import app
from tests.helpers import toy_rows
from distill.metrics import SCHEMA_VERSION, AuditMetrics, unknown_keys
from distill.runs import read_jsonl
from tests.fake_openai import FakeOpenAI

runner = CliRunner()


def cli(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


# --- confident learning, by hand ---------------------------------------------------------------------


def test_thresholds_and_issues_follow_the_confident_joint():
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.2, 0.8], [0.1, 0.9], [0.6, 0.4]])
    given = np.array([0, 0, 0, 1, 1, 1])
    t = thresholds(probs, given)
    assert t == pytest.approx([(0.9 + 0.8 + 0.3) / 3, (0.8 + 0.9 + 0.4) / 3])
    issue, confident = label_issues(probs, given)
    # Row 2 (given 0) is confidently 1 (0.7 >= 0.7); row 5 (given 1) is confidently 0 (0.6 >= 0.667? no): not an issue.
    assert issue.tolist() == [False, False, True, False, False, False]
    scored = rank_suspects(probs, given)
    assert scored["rank"][2] == 1 and scored["score"][2] == pytest.approx(0.7)


def test_combine_averages_and_falls_back_to_the_proxy_without_teacher_probs():
    proxy = np.array([[0.2, 0.8], [0.6, 0.4]])
    teacher = np.array([[0.6, 0.4], [np.nan, np.nan]])
    mixed = combine(proxy, teacher, 0.5)
    assert mixed[0] == pytest.approx([0.4, 0.6]) and mixed[1] == pytest.approx([0.6, 0.4])
    assert combine(proxy, None, 0.5) is proxy
    assert precision_at([3, 1, 2], {3, 2}, 2) == 0.5


def test_flags_match_cleanlab_when_it_is_installed():
    filter_mod = pytest.importorskip("cleanlab.filter")
    rng = np.random.default_rng(0)
    probs = rng.dirichlet([1, 1, 1], size=300)
    given = rng.integers(0, 3, size=300)
    ours, _ = label_issues(probs, given)
    theirs = filter_mod.find_label_issues(given, probs, filter_by="confident_learning")
    assert (ours == theirs).mean() > 0.98


# --- the command on a fake teacher that flips labels ---------------------------------------------------


def toy_csv(path: Path, n: int = 200, seed: int = 3) -> tuple[Path, list[dict]]:
    rows = toy_rows(n, seed=seed)
    texts = list(dict.fromkeys(r["text"] for r in rows))  # the audit scores distinct texts
    rows = [next(r for r in rows if r["text"] == t) for t in texts]
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text"])
        w.writerows([r["text"]] for r in rows)
    return path, rows


@pytest.fixture
def flipped_run(tmp_path):
    """A label run of toy reviews where the fake teacher got a known tenth of the distinct texts wrong."""
    data, rows = toy_csv(tmp_path / "reviews.csv")
    flipped = set(random.Random(0).sample([r["text"] for r in rows], len(rows) // 10))
    with FakeOpenAI() as fake:
        fake.flip = flipped
        r = cli("label", str(data), "--labels", "positive,negative", "--teacher", "fake", "--base-url", fake.base_url,
                "--out", str(tmp_path / "label"))
        assert r.exit_code == 0, r.output
    return tmp_path / "label", rows, flipped


def test_audit_ranks_the_flipped_labels_on_top(flipped_run, tmp_path):
    label_run, rows, flipped = flipped_run
    out = tmp_path / "audit"
    r = cli("audit", str(label_run), "--out", str(out))
    assert r.exit_code == 0, r.output
    suspects = read_jsonl(out / "suspects.jsonl")
    assert [s["rank"] for s in suspects] == list(range(1, len(suspects) + 1))
    assert set(suspects[0]) >= {"text", "teacher_label", "teacher_prob", "proxy_label", "proxy_prob", "score", "rank", "row"}
    top = [s["text"] for s in suspects[: len(flipped)]]
    assert sum(t in flipped for t in top) >= 0.8 * len(flipped), (len(suspects), sum(t in flipped for t in top))
    m = json.loads((out / "metrics.json").read_text())
    assert m["suspects"] == len(suspects) and m["rows_audited"] == len(rows)
    assert m["schema_version"] == SCHEMA_VERSION and unknown_keys(m, AuditMetrics) == []
    assert (out / "manifest.json").is_file()
    with open(out / "suspects.csv", encoding="utf-8") as f:
        table = list(csv.DictReader(f))
    assert len(table) == len(suspects) and all(row["correct_label"] == "" for row in table)


def test_a_persons_corrections_win_in_label_and_train(flipped_run, tmp_path):
    label_run, rows, flipped = flipped_run
    out = tmp_path / "audit"
    assert cli("audit", str(label_run), "--out", str(out)).exit_code == 0
    truth = {r["text"]: r["label"] for r in rows}
    with open(out / "suspects.csv", encoding="utf-8") as f:
        table = list(csv.DictReader(f))
    k = min(6, len(table))
    assert k >= 5
    for row in table[:k]:
        row["correct_label"] = truth[row["text"]]  # a person reviews the most suspect rows
    fixed = tmp_path / "corrected.csv"
    with open(fixed, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(table[0]))
        w.writeheader()
        w.writerows(table)

    r = cli("audit", str(label_run), "--out", str(tmp_path / "audit2"), "--corrections", str(fixed))
    assert r.exit_code == 0, r.output
    m = json.loads((tmp_path / "audit2" / "metrics.json").read_text())
    assert m["corrections_imported"] == k and m["human_labels"] == k
    assert not {s["text"] for s in read_jsonl(tmp_path / "audit2" / "suspects.jsonl")} & {t["text"] for t in table[:k]}

    # train on the label run labeled *before* the correction: the person's labels still win
    from distill.train.data import read_label_run

    data = read_label_run(label_run)
    got = dict(zip(data.texts, data.targets))
    for row in table[:k]:
        assert data.labels[got[row["text"]]] == truth[row["text"]]

    # a later label run on the same cache, without the file: the person's labels win there too, no teacher call
    # (the same fake teacher at a new port: answers are keyed by URL, so the run says whose answers to reuse)
    first_url = json.loads((label_run / "config.json").read_text())["settings"]["base_url"]
    with FakeOpenAI() as fake:
        fake.flip = flipped
        r = cli("label", str(tmp_path / "reviews.csv"), "--labels", "positive,negative", "--teacher", "fake",
                "--base-url", fake.base_url, "--out", str(tmp_path / "label2"), "--reuse-answers-from", first_url)
        assert r.exit_code == 0, r.output
        assert fake.texts == []
    by_text = {x["text"]: x for x in read_jsonl(tmp_path / "label2" / "labels.jsonl")}
    for row in table[:k]:
        rec = by_text[row["text"]]
        assert rec["label"] == truth[row["text"]] and rec["source"] == "human" and rec["teacher_label"] == row["teacher_label"]
    assert json.loads((tmp_path / "label2" / "metrics.json").read_text())["human_labels"] == k


def test_corrections_with_an_unknown_label_name_the_row(flipped_run, tmp_path):
    label_run, rows, _ = flipped_run
    bad = tmp_path / "bad.csv"
    bad.write_text(f"text,correct_label\n{rows[0]['text']},neutral\n", encoding="utf-8")
    r = cli("audit", str(label_run), "--out", str(tmp_path / "a"), "--corrections", str(bad))
    assert r.exit_code == 2
    assert "row 2 has label 'neutral'" in r.output and "positive" in r.output


def test_review_teacher_reasks_only_the_suspects_and_records_changes(flipped_run, tmp_path):
    label_run, rows, flipped = flipped_run
    out = tmp_path / "audit"
    with FakeOpenAI() as strong:  # a teacher that makes no mistakes
        r = cli("audit", str(label_run), "--out", str(out), "--review-teacher", "strong", "--base-url", strong.base_url,
                "--review-top", "15")
        assert r.exit_code == 0, r.output
        asked = [t for t in strong.texts if t != "N/A"]
    suspects = read_jsonl(out / "suspects.jsonl")
    reviewed = suspects[:15]
    assert sorted(asked) == sorted(s["text"] for s in reviewed)
    for s in reviewed:
        assert s["review_changed"] == (s["text"] in flipped)
    m = json.loads((out / "metrics.json").read_text())
    assert m["reviewed"] == len(reviewed) and m["review_changed"] == sum(s["text"] in flipped for s in reviewed)


def test_audit_after_training_audits_the_train_runs_label_run(flipped_run, tmp_path):
    from distill.runs import finish_run, start_run

    label_run, rows, flipped = flipped_run
    train_run = tmp_path / "train"
    settings = {"data": str(label_run), "student": "minilm"}
    start_run(train_run, "train", settings)
    finish_run(train_run, "train", settings, {"val_accuracy": 0.9}, "# train\n")
    r = cli("audit", str(train_run), "--out", str(tmp_path / "audit"))
    assert r.exit_code == 0, r.output
    m = json.loads((tmp_path / "audit" / "metrics.json").read_text())
    assert Path(m["label_run"]) == label_run and m["rows_audited"] == len(rows)
    r = cli("audit", str(tmp_path / "nowhere"), "--out", str(tmp_path / "a2"))
    assert r.exit_code == 2 and "no such run folder" in r.output
