"""The real bundled all-MiniLM-L6-v2 student, fine-tuned for a few steps, exported through the CLI with every
option, then served by `distill predict`. Tens of seconds on 2 cores."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from distill.cli import app
from distill.runs import is_finished, read_json
from tests.helpers import toy_rows
from tests.helpers import make_label_run

runner = CliRunner()


@pytest.mark.slow
def test_minilm_student_exports_verified_and_serves(tmp_path) -> None:
    label = make_label_run(tmp_path / "label", toy_rows(96))
    train = tmp_path / "train"
    result = runner.invoke(
        app, ["train", str(label), "--student", "minilm", "--out", str(train), "--max-steps", "12", "--eval-steps", "6"]
    )
    assert result.exit_code == 0, result.output

    out = tmp_path / "export"
    result = runner.invoke(
        app, ["export", str(train), "--onnx", "--out", str(out), "--with-tokenizer", "--ort", "--latency-texts", "16"]
    )
    assert result.exit_code == 0, result.output
    assert is_finished(out)
    m = read_json(out / "metrics.json")
    assert m["max_abs_diff"] <= 1e-4
    assert m["accuracy_drop_points"] <= 1.0
    # The same model on the same validation rows as the train stage measured: the stages agree.
    trained = read_json(train / "metrics.json")
    assert abs(m["engines"]["torch"]["val_accuracy"] - trained["val_accuracy"]) <= 1 / m["val_rows_scored"] + 1e-9
    # 22.7M parameters: ~90 MB fp32; int8 with the embeddings quantized too is about a quarter of that.
    fp32, int8 = m["engines"]["onnx_fp32"]["size_bytes"], m["engines"]["onnx_int8"]["size_bytes"]
    assert 80e6 < fp32 < 100e6 and int8 < 0.3 * fp32
    meta = read_json(out / "labels.json")
    assert meta["labels"] == ["negative", "positive"] and meta["max_length"] == 128
    assert m["with_tokenizer"]["max_abs_diff_probs"] <= 1e-4
    assert set(m["ort"]["files"]) == {"model.int8.ort", "model.with_tokenizer.ort"}

    from transformers import pipeline

    texts = ["the dessert tasted wonderful", "our waiter was rude", "the room felt cold " * 40]
    want = [r["label"] for r in pipeline("text-classification", model=str(train / "model"), device="cpu")(texts, truncation=True)]
    for model in ("model.int8.onnx", "model.onnx", "model.with_tokenizer.onnx", "model.int8.ort"):
        result = runner.invoke(app, ["predict", str(out), "--model", model, *(a for t in texts for a in ("--text", t))])
        assert result.exit_code == 0, result.output
        rows = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
        assert [r["label"] for r in rows] == want, (model, rows)
        assert [r["truncated"] for r in rows] == [False, False, True]
