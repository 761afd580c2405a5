"""`distill predict` and distill/runtime.py: JSON lines out, truncation reported, bad input exit 2, and the
code path imports neither torch nor transformers (checked in a fresh interpreter)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from distill.cli import app

runner = CliRunner()
REPO = Path(__file__).resolve().parents[2]

# Runs `distill predict ...` in a fresh interpreter, then reports which heavy modules got imported.
NO_TORCH_SCRIPT = """
import json, sys
from distill.cli import main
sys.argv = ["distill", "predict", *json.loads(sys.argv[1])]
try:
    main()
except SystemExit as e:
    assert not e.code, e.code
heavy = sorted(m for m in ("torch", "transformers", "optimum", "onnxruntime_extensions") if m in sys.modules)
print(json.dumps({"heavy": heavy}))
"""


def predict_cli(*args: str):
    return runner.invoke(app, ["predict", *map(str, args)])


def json_lines(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def run_without_torch(args: list[str]) -> tuple[list[dict], list[str]]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-c", NO_TORCH_SCRIPT, json.dumps(args)], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    lines = json_lines(proc.stdout)
    return lines[:-1], lines[-1]["heavy"]


def test_predict_prints_json_lines(tiny_export: Path) -> None:
    result = predict_cli(tiny_export, "--text", "the soup was cold", "--text", "lovely staff")
    assert result.exit_code == 0, result.output
    rows = json_lines(result.output)
    assert [r["text"] for r in rows] == ["the soup was cold", "lovely staff"]
    for r in rows:
        assert set(r) == {"text", "label", "probs", "truncated"}
        assert r["label"] in ("negative", "positive") and list(r["probs"]) == ["negative", "positive"]
        assert abs(sum(r["probs"].values()) - 1) < 1e-5
        assert r["label"] == max(r["probs"], key=r["probs"].get)
        assert r["truncated"] is False


def test_predict_reports_truncation(tiny_export: Path) -> None:
    long = "the pasta was great " * 30  # ~120 tokens, max_length is 32
    result = predict_cli(tiny_export, "--text", long, "--text", "short")
    assert result.exit_code == 0, result.output
    rows = json_lines(result.output)
    assert [r["truncated"] for r in rows] == [True, False]
    assert "1 text(s) were over 32 tokens and were truncated" in result.output


def test_predict_reads_txt_jsonl_and_csv(tiny_export: Path, tmp_path: Path) -> None:
    (tmp_path / "t.txt").write_text("first text\n\nsecond text\n", encoding="utf-8")
    (tmp_path / "t.jsonl").write_text('{"text": "first text"}\n{"text": "second text", "id": 2}\n', encoding="utf-8")
    (tmp_path / "t.csv").write_text("id,text\n1,first text\n2,second text\n", encoding="utf-8")
    outputs = []
    for name in ("t.txt", "t.jsonl", "t.csv"):
        result = predict_cli(tiny_export, "--input", tmp_path / name)
        assert result.exit_code == 0, result.output
        outputs.append(json_lines(result.output))
    assert [r["text"] for r in outputs[0]] == ["first text", "second text"]
    assert outputs[0] == outputs[1] == outputs[2]


def test_predict_without_torch_or_transformers(tiny_export: Path) -> None:
    rows, heavy = run_without_torch([str(tiny_export), "--text", "the soup was cold"])
    assert heavy == []
    assert rows[0]["label"] in ("negative", "positive")
    # The tokenizer-in-graph model needs the extensions' library, found without importing the package.
    rows_graph, heavy = run_without_torch([str(tiny_export), "--model", "model.with_tokenizer.onnx", "--text", "the soup was cold"])
    assert heavy == []
    assert rows_graph[0]["label"] == rows[0]["label"]
    assert abs(rows_graph[0]["probs"]["positive"] - rows[0]["probs"]["positive"]) < 1e-5


def test_runtime_module_itself_imports_no_torch() -> None:
    """The file an edge service embeds: importing it must not drag torch in through distill's other modules."""
    code = "import sys, distill.runtime; print([m for m in ('torch', 'transformers', 'pydantic') if m in sys.modules])"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_tokenizer_in_graph_predict_loops_over_a_batch(tiny_export: Path) -> None:
    from distill.runtime import Predictor

    texts = ["the soup was cold", "lovely staff", "word " * 60]
    graph = Predictor(tiny_export, "model.with_tokenizer.onnx").predict(texts)
    assert [r["text"] for r in graph] == texts  # three answers, not one for a joined sequence
    assert [r["truncated"] for r in graph] == [False, False, True]


@pytest.mark.parametrize("text", ["", "   ", "\n"])
def test_empty_text_exit_2(tiny_export: Path, text: str) -> None:
    result = predict_cli(tiny_export, "--text", "fine", "--text", text)
    assert result.exit_code == 2
    assert "text #2 is empty" in result.output and "{" not in result.output  # nothing printed before the error


def test_predict_bad_input_exit_2(tiny_export: Path, tmp_path: Path) -> None:
    assert predict_cli(tiny_export).exit_code == 2  # neither --text nor --input
    result = predict_cli(tiny_export, "--text", "a", "--input", tmp_path / "t.txt")
    assert result.exit_code == 2 and "not both" in result.output
    result = predict_cli(tmp_path, "--text", "a")
    assert result.exit_code == 2 and "not a finished export run" in result.output
    result = predict_cli(tiny_export, "--text", "a", "--model", "model.fp16.onnx")
    assert result.exit_code == 2 and "no such model file" in result.output and "model.int8.onnx" in result.output
    (tmp_path / "t.jsonl").write_text('{"body": "x"}\n', encoding="utf-8")
    result = predict_cli(tiny_export, "--input", tmp_path / "t.jsonl")
    assert result.exit_code == 2 and 't.jsonl:1: each line must be an object with a "text" field' in result.output


def test_predict_refuses_an_unfinished_export(tiny_export: Path, tmp_path: Path) -> None:
    import shutil

    half = tmp_path / "half"
    shutil.copytree(tiny_export, half)
    (half / "manifest.json").unlink()
    result = predict_cli(half, "--text", "a")
    assert result.exit_code == 2 and "did not finish" in result.output


def test_token_batches_keep_similar_lengths_together_and_every_text_once() -> None:
    from distill.runtime import PAD_SLACK, PAD_TOKENS, token_batches

    lengths = [5, 120, 6, 7, 30, 31, 5, 128, 29, 6] * 10
    batches = token_batches(lengths, 32)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for b in batches:
        assert len(b) <= 32
        shortest, longest = min(lengths[i] for i in b), max(lengths[i] for i in b)
        assert longest <= max(shortest * (1 + PAD_SLACK), shortest + PAD_TOKENS)
    assert len(token_batches([10] * 100, 32)) == 4  # equal lengths: full batches


def test_predict_in_token_batches_gives_the_padded_batch_answers(tiny_export: Path) -> None:
    """predict() tokenizes once unpadded and pads per batch itself: the same inputs as the padding tokenizer."""
    import numpy as np

    from distill.runtime import Predictor

    p = Predictor(tiny_export, "model.onnx")
    texts = ["the soup was cold", "lovely staff and a great view over the harbour at sunset", "ok", "rude " * 300]
    rows = p.predict(texts, batch_size=2)
    for text, row in zip(texts, rows):
        probs, cut = p.probabilities([text])
        assert np.allclose([row["probs"][lab] for lab in p.labels], probs[0], atol=1e-5)
        assert row["truncated"] == cut[0] and row["text"] == text
