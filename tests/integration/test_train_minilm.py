"""The real bundled all-MiniLM-L6-v2 (`--student minilm`) fine-tunes for a few steps through the CLI."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from distill.cli import app
from distill.runs import read_json
from tests.helpers import toy_rows
from tests.helpers import LABELS, make_label_run


@pytest.mark.slow
def test_minilm_alias_trains_offline_and_loads_in_a_pipeline(tmp_path, capfd):
    run = make_label_run(tmp_path / "label", toy_rows(96))
    out = tmp_path / "train"
    result = CliRunner().invoke(app, ["train", str(run), "--student", "minilm", "--out", str(out),
                                      "--max-steps", "24", "--eval-steps", "6"])
    assert result.exit_code == 0, result.output
    assert "newly initialized" not in result.output + capfd.readouterr().err  # the expected fresh-head warning
    m = read_json(out / "metrics.json")
    assert m["steps"] == 24 and m["loss"] == "kd" and m["precision"] == "fp32"
    # a pretrained sentence encoder separates the toy sentiment words after two dozen steps (after 12 it was
    # 64-93% on 14 validation rows depending on the seed and batch order; after 24, 100% on seeds 0 and 1)
    assert m["val_accuracy"] >= 0.8, m

    from transformers import AutoConfig, pipeline

    config = AutoConfig.from_pretrained(out / "model")
    assert config.id2label == dict(enumerate(LABELS)) and config.architectures == ["BertForSequenceClassification"]
    clf = pipeline("text-classification", model=str(out / "model"), device="cpu")
    assert clf("the dessert tasted wonderful")[0]["label"] == "positive"
    assert clf("our waiter was rude")[0]["label"] == "negative"
