"""`distill run` with an `audit:` section and `label.budget`: the real label and audit stages on a fake teacher
that flips labels, stand-ins for train and export (tests/unit/test_pipeline.py's)."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest
import yaml

from distill.run import chain as pipeline
from tests.fake_openai import FakeOpenAI
from tests.unit.test_audit import toy_csv
from tests.unit.test_pipeline import FakeStages


@pytest.fixture
def stages(monkeypatch: pytest.MonkeyPatch) -> FakeStages:
    fake = FakeStages()

    def pick(stage: str):
        if stage in ("train", "export"):
            return fake(stage)

        def real(cfg, out):
            fake.calls.append((stage, cfg.model_copy()))
            return pipeline.__dict__["_real_stage_function"](stage)(cfg, out)

        return real

    monkeypatch.setattr(pipeline, "_real_stage_function", pipeline.stage_function, raising=False)
    monkeypatch.setattr(pipeline, "stage_function", pick)
    return fake


def write_recipe(tmp_path: Path, base_url: str, **label_extra) -> Path:
    data, rows = toy_csv(tmp_path / "reviews.csv")
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump({
        "name": "audited", "artifacts": str(tmp_path / "artifacts"),
        "label": {"input": "reviews.csv", "labels": ["positive", "negative"], "teacher": "fake", "base_url": base_url, **label_extra},
        "audit": {"folds": 5},
        "train": {"epochs": 1},
    }))
    return path


def test_a_recipe_audits_and_a_persons_corrections_rerun_label_and_train(stages, tmp_path):
    with FakeOpenAI() as fake:
        data, rows = toy_csv(tmp_path / "reviews.csv")
        fake.flip = set(random.Random(0).sample([r["text"] for r in rows], 9))
        recipe = write_recipe(tmp_path, fake.base_url)
        pipeline.run_pipeline(pipeline.load_recipe(recipe), report=False)
        assert stages.ran() == ["label", "audit", "train", "export"]
        root = tmp_path / "artifacts" / "audited"
        audit_cfg = json.loads((root / "audit" / "config.json").read_text())["settings"]
        assert Path(audit_cfg["label_run"]) == root / "label"
        suspects = [json.loads(x) for x in (root / "audit" / "suspects.jsonl").read_text().splitlines()]
        assert sum(s["text"] in fake.flip for s in suspects[:9]) >= 7
        state = json.loads((root / "pipeline.json").read_text())
        assert state["stages"]["audit"]["state"] == "finished"

        pipeline.run_pipeline(pipeline.load_recipe(recipe), report=False)
        assert stages.ran() == []  # all four finished with the same settings

        # A person fills in suspects.csv; the recipe names it: label re-runs from the cache, then audit and train.
        with open(root / "audit" / "suspects.csv", encoding="utf-8") as f:
            table = list(csv.DictReader(f))
        truth = {r["text"]: r["label"] for r in rows}
        for row in table[:5]:
            row["correct_label"] = truth[row["text"]]
        fixed = tmp_path / "fixed.csv"
        with open(fixed, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=list(table[0]))
            w.writeheader()
            w.writerows(table)
        asked = len(fake.texts)
        pipeline.run_pipeline(pipeline.load_recipe(recipe, [f"audit.corrections={fixed}"]), report=False)
        assert stages.ran() == ["label", "audit", "train", "export"]
        assert len(fake.texts) == asked  # every answer from the cache
    from distill.run.report import build_report

    page = build_report(root).read_text(encoding="utf-8")
    assert "teacher labels most likely wrong" in page and "suspects.csv" in page
    labels = {json.loads(x)["text"]: json.loads(x) for x in (root / "label" / "labels.jsonl").read_text().splitlines()}
    assert all(labels[r["text"]]["source"] == "human" and labels[r["text"]]["label"] == truth[r["text"]] for r in table[:5])


def test_a_recipe_labels_under_a_budget_and_self_trains_on_the_rest(stages, tmp_path):
    with FakeOpenAI() as fake:
        recipe = write_recipe(tmp_path, fake.base_url, budget=40, seed_rows=20, round_rows=10)
        cfg = pipeline.load_recipe(recipe)
        configs = pipeline.stage_configs(cfg)
        assert configs["train"].unlabeled == configs["label"].input  # the rows never asked are self-training text
        plan = pipeline.describe_plan(cfg, pipeline.plan(cfg))
        assert "label -> audit -> train -> export" in plan[0] and any(line.strip().startswith("audit") for line in plan)
        pipeline.run_pipeline(cfg, report=False)
        assert len([t for t in fake.texts if t != "N/A"]) == 40
    m = json.loads((tmp_path / "artifacts" / "audited" / "label" / "metrics.json").read_text())
    assert m["budget"] == 40 and m["rounds"] == 3 and m["labeled"] == 40
