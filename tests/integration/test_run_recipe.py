"""`distill run` end to end through the CLI with the real stages: a fake teacher server on 127.0.0.1, a
tiny random BERT student, a few dozen texts. Then the skip rule, a one-stage re-run, `distill report`, and
a bad recipe, each against the same artifacts folder.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from distill.cli import app
from tests.helpers import toy_rows
from tests.fake_openai import FakeOpenAI

pytest.importorskip("onnxruntime")
pytest.importorskip("matplotlib")


@pytest.fixture(scope="module")
def server():
    with FakeOpenAI() as s:
        yield s


@pytest.fixture(scope="module")
def recipe(tmp_path_factory, tiny_bert_dir, server) -> Path:
    d = tmp_path_factory.mktemp("recipe")
    (d / "texts.txt").write_text("\n".join(r["text"] + f" (visit {i})" for i, r in enumerate(toy_rows(48))) + "\n")
    with open(d / "gold.csv", "w", newline="") as f:
        csv.writer(f).writerows([("text", "label")] + [(r["text"], r["label"]) for r in toy_rows(12, seed=1)])
    path = d / "toy.yaml"
    path.write_text(yaml.safe_dump({
        "name": "toy",
        "description": "Toy restaurant sentiment",
        "artifacts": str(d / "artifacts"),
        "label": {"input": "texts.txt", "labels": ["positive", "negative"], "teacher": "fake-teacher",
                  "base_url": server.base_url, "cache": str(d / "teacher.sqlite"), "concurrency": 4},
        "train": {"student": str(tiny_bert_dir), "gold": "gold.csv", "epochs": 2, "batch_size": 8, "max_length": 32,
                  "learning_rate": 1e-3},
        "export": {"latency_texts": 4},
    }))
    return path


def invoke(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def first_run(recipe):
    result = invoke("run", str(recipe))
    return result, recipe.parent / "artifacts" / "toy"


def test_first_run_labels_trains_exports_and_reports(first_run, server):
    result, root = first_run
    assert result.exit_code == 0, result.output
    out = result.stdout  # progress bars go to stderr
    assert re.search(r"^  label +~.*48 rows", out, re.M) and re.search(r"^  train +~", out, re.M)
    for stage in ("label", "train", "export"):
        assert re.search(rf"^{stage}: done in ", out, re.M), out
    assert "49 teacher calls" in out and len(server.requests) == 49  # 48 texts + the preflight
    assert (root / "export" / "model.int8.onnx").is_file() and (root / "report.html").is_file()
    assert json.loads((root / "train" / "config.json").read_text())["settings"]["data"] == str(root / "label")
    page = (root / "report.html").read_text()
    for sid in ("labels", "unsure", "student", "gold", "deploy", "cost"):
        assert f'<section id="{sid}">' in page
    assert "ONNX int8" in page and "No gold labels" not in page


def test_second_run_skips_every_stage_and_asks_the_teacher_nothing(first_run, recipe, server):
    before = len(server.requests)
    result = invoke("run", str(recipe))
    assert result.exit_code == 0, result.output
    assert len(re.findall(r"^\w+: skipped", result.stdout, re.M)) == 3
    assert len(server.requests) == before


def test_changing_an_export_setting_reruns_export_only(first_run, recipe):
    result = invoke("run", str(recipe), "--set", "export.quantize=none")
    assert result.exit_code == 0, result.output
    assert re.findall(r"^(\w+): (skipped|done)", result.stdout, re.M) == [
        ("label", "skipped"), ("train", "skipped"), ("export", "done")]
    root = first_run[1]
    assert not (root / "export" / "model.int8.onnx").exists() and (root / "export" / "model.onnx").is_file()


def test_report_command_rebuilds_the_page(first_run, tmp_path):
    out = tmp_path / "r.html"
    result = invoke("report", str(first_run[1]), "--out", str(out))
    assert result.exit_code == 0 and out.is_file() and '<section id="student">' in out.read_text()


def test_a_bad_recipe_value_names_the_key_and_exits_2(recipe):
    result = CliRunner().invoke(app, ["run", str(recipe), "--set", "train.learning_rate=-1"])
    assert result.exit_code == 2
    assert "train.learning_rate: Input should be greater than 0" in result.output


def test_a_three_label_recipe_runs_end_to_end(tmp_path, tiny_bert_dir):
    labels = ["billing", "delivery", "bug"]
    texts = [f"ticket {i}: a {labels[i % 3]} problem with order {i}" for i in range(36)]
    (tmp_path / "t.txt").write_text("\n".join(texts) + "\n")
    with FakeOpenAI(labels=tuple(labels)) as server:
        path = tmp_path / "tickets.yaml"
        path.write_text(yaml.safe_dump({
            "name": "tickets", "artifacts": str(tmp_path / "artifacts"),
            "label": {"input": "t.txt", "labels": labels, "teacher": "fake-teacher", "base_url": server.base_url,
                      "cache": str(tmp_path / "c.sqlite")},
            "train": {"student": str(tiny_bert_dir), "epochs": 1, "batch_size": 8, "max_length": 32},
            "export": {"latency_texts": 4, "max_accuracy_drop": 100},
        }))
        result = invoke("run", str(path))
    assert result.exit_code == 0, result.output
    root = tmp_path / "artifacts" / "tickets"
    assert json.loads((root / "export" / "labels.json").read_text())["labels"] == labels
    train_metrics = json.loads((root / "train" / "metrics.json").read_text())
    assert len(train_metrics["confusion_matrix"]) == 3
    page = (root / "report.html").read_text()
    # label distribution, confidence, confusion matrix, size/latency, time; no gold chart without gold
    assert page.count("<img") == 5 and "No gold labels were given" in page
