"""The HTML report: built from run folders alone, self-contained, and holding the sections people read."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from distill.errors import BadInput
from distill.run.report import build_report
from distill.runs import finish_run, start_run, write_json

LABELS = ["billing", "delivery", "bug"]


def make_runs(root: Path, gold: bool = True, export_metrics: dict | None = None) -> Path:
    """A pipeline folder with finished label/train/export runs, as the stages write them."""
    lab = root / "label"
    start_run(lab, "label", {"labels": LABELS, "teacher": "local", "low_confidence": 0.6})
    rows = []
    for i in range(30):
        conf = 0.34 + i * 0.02
        label = LABELS[i % 3]
        rest = (1 - conf) / 2
        probs = {lb: conf if lb == label else rest for lb in LABELS}
        rows.append({"row": i, "text": f"ticket number {i} <b>bold</b>", "label": label, "probs": probs,
                     "confidence": conf, "source": "logprobs", "raw": None})
    rows.append({"row": 30, "text": "gibberish", "label": None, "probs": None, "confidence": None, "source": "invalid", "raw": "I think"})
    (lab / "labels.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    finish_run(lab, "label", {"labels": LABELS}, {"rows": 31, "invalid": 1, "cost_usd": 0.0123, "seconds": 95.0, "teacher_calls": 31}, "# l\n")

    tr = root / "train"
    start_run(tr, "train", {"data": str(lab), "student": "minilm"})
    (tr / "model").mkdir()
    (tr / "model" / "model.safetensors").write_bytes(b"0" * 90_000)
    m = {"val_accuracy": 0.8123, "val_macro_f1": 0.8, "train_rows": 25, "dropped_invalid": 1,
         "seconds": 130.0, "device": "cpu", "labels": LABELS, "confusion_matrix": [[3, 1, 0], [0, 2, 0], [1, 0, 2]]}
    if gold:
        m.update(gold_accuracy=0.875, gold_macro_f1=0.86, teacher_gold_accuracy=0.85, teacher_gold_macro_f1=0.84)
    finish_run(tr, "train", {"data": str(lab)}, m, "# t\n")

    ex = root / "export"
    start_run(ex, "export", {"model": str(tr)})
    (ex / "model.onnx").write_bytes(b"0" * 88_000)
    (ex / "model.int8.onnx").write_bytes(b"0" * 23_000)
    finish_run(ex, "export", {"model": str(tr)}, export_metrics if export_metrics is not None else EXPORT_METRICS, "# e\n")
    return root


EXPORT_METRICS = {
    "schema_version": 2,
    "seconds": 61.0,
    "engines": {
        "torch": {"size_bytes": 90_000, "latency_ms_batch1": 4.1, "ms_per_item_batch32": 1.1, "val_accuracy": 0.8123},
        "onnx_fp32": {"size_bytes": 88_000, "latency_ms_batch1": 1.2, "ms_per_item_batch32": 0.5, "val_accuracy": 0.8123},
        "onnx_int8": {"size_bytes": 23_000, "latency_ms_batch1": 0.6, "ms_per_item_batch32": 0.3, "val_accuracy": 0.80},
    },
}


def sections(page: str) -> dict[str, str]:
    return dict(re.findall(r'<section id="(\w+)">(.*?)</section>', page, re.S))


@pytest.fixture(scope="module")
def full(tmp_path_factory) -> tuple[Path, str]:
    """One report over complete runs, shared by the tests that only read it (plots cost ~2 s of CPU)."""
    root = make_runs(tmp_path_factory.mktemp("runs") / "demo")
    write_json(root / "pipeline.json", {"recipe": {"name": "support-tickets", "description": "Route <tickets>"}})
    path = build_report(root)
    return path, path.read_text()


def test_report_holds_every_section_and_opens_offline(full):
    path, page = full
    assert path.name == "report.html" and path.parent.name == "demo"
    s = sections(page)
    assert list(s) == ["summary", "labels", "unsure", "student", "gold", "deploy", "cost", "sources"]
    # Self-contained: every image is inline, nothing is fetched from anywhere.
    srcs = re.findall(r'src="([^"]*)"', page)
    assert len(srcs) == 6 and all(src.startswith("data:image/png;base64,") for src in srcs)
    assert not re.search(r'(href|src)="https?:', page) and "<script" not in page
    assert s["labels"].count("<img") == 2  # distribution + confidence histogram
    assert "1 rows got no valid answer" in s["labels"] and "I think" in s["labels"]
    assert "81.2%" in s["student"] and s["student"].count("<img") == 1
    assert "2.5 points above" in s["gold"]
    assert "$0.0123" in s["cost"] and "1.6 min" in s["cost"]  # label 95 s
    assert "<td>0.60</td>" in s["deploy"]  # int8 at batch 1
    assert "0.1 MB" in s["deploy"] and "0.0 MB" in s["deploy"]  # 90 kB, 88 kB and 23 kB from the metrics
    assert "<title>distill report: support-tickets</title>" in page and "Route &lt;tickets&gt;" in page


def test_unsure_rows_are_the_least_confident_first_and_escaped(full):
    unsure = sections(full[1])["unsure"]
    rows = re.findall(r"ticket number (\d+)", unsure)
    assert rows[:3] == ["0", "1", "2"] and len(rows) == 15 and "29" not in rows
    assert "<b>bold</b>" not in unsure and "&lt;b&gt;bold&lt;/b&gt;" in unsure  # texts are data, not markup


def test_without_gold_or_a_finished_export_the_report_says_so(tmp_path):
    root = make_runs(tmp_path / "demo", gold=False)
    (root / "export" / "manifest.json").unlink()  # an export that never finished
    s = sections(build_report(root).read_text())
    assert "No gold labels were given" in s["gold"]
    assert "No finished export run" in s["deploy"]
    assert "<img" in s["labels"] and "81.2%" in s["student"]


def test_from_an_export_folder_the_upstream_runs_are_followed(tmp_path):
    root = make_runs(tmp_path / "demo")
    out = tmp_path / "elsewhere.html"
    assert build_report(root / "export", out) == out
    s = sections(out.read_text())
    assert "<img" in s["labels"] and "81.2%" in s["student"] and "<td>0.60</td>" in s["deploy"]


def test_a_folder_without_runs_is_bad_input(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(BadInput, match=r"empty: no finished label, train or export run in it"):
        build_report(tmp_path / "empty")
    with pytest.raises(BadInput, match=r"nope: no such folder"):
        build_report(tmp_path / "nope")
