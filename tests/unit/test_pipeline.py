"""The chain logic of `distill run` with stand-in stage functions: wiring, skip, re-run, resume, --set.

The stand-ins write finished run folders through distill.runs exactly as the real stages do, and log
each call, so the tests see which stages ran and with which config.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from distill.run import chain as pipeline
from distill.errors import BadInput
from distill.runs import finish_run, require_finished, start_run

LABELS = ["negative", "positive"]


class FakeStages:
    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []
        self.fail_in: str | None = None
        self.label_errors = 0  # requests the teacher never answered

    def __call__(self, stage: str):
        return getattr(self, stage)

    def label(self, cfg, out: Path, **kw) -> dict:
        self.calls.append(("label", cfg.model_copy()))
        if cfg.dry_run:  # like the real stage: an estimate, and no folder written
            return {"rows": 4, "est_cost_usd": 0.0, "est_prompt_tokens": 100}
        start_run(out, "label", cfg.resolved())
        texts = Path(cfg.input).read_text().split("\n")
        rows = [
            {"row": i, "text": t, "label": LABELS[int("good" in t)], "probs": None, "confidence": None, "source": "json", "raw": None}
            for i, t in enumerate(t for t in texts if t)
        ]
        (out / "labels.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        m = {"rows": len(rows), "errors": self.label_errors, "last_error": "timeout" if self.label_errors else None}
        finish_run(out, "label", cfg.resolved(), m, "# label\n")
        return m

    def train(self, cfg, out: Path, **kw) -> dict:
        self.calls.append(("train", cfg.model_copy()))
        if Path(cfg.data).is_dir():
            require_finished(Path(cfg.data), "label")
        start_run(out, "train", cfg.resolved())
        (out / "checkpoints" / "checkpoint-2").mkdir(parents=True, exist_ok=True)
        if self.fail_in == "train":
            raise KeyboardInterrupt  # what Ctrl-C half-way through training looks like
        m = {"val_accuracy": 0.9, "labels": LABELS, "confusion_matrix": [[1, 0], [0, 1]]}
        finish_run(out, "train", cfg.resolved(), m, "# train\n")
        return m

    def export(self, cfg, out: Path, **kw) -> dict:
        self.calls.append(("export", cfg.model_copy()))
        require_finished(Path(cfg.model), "train")
        start_run(out, "export", cfg.resolved())
        (out / "model.onnx").write_bytes(b"0" * 1000)
        m = {}
        finish_run(out, "export", cfg.resolved(), m, "# export\n")
        return m

    def ran(self) -> list[str]:
        names = [c[0] for c in self.calls]
        self.calls.clear()
        return names


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeStages:
    stages = FakeStages()
    monkeypatch.setattr(pipeline, "stage_function", stages)
    return stages


@pytest.fixture
def recipe(tmp_path: Path) -> Path:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "texts.txt").write_text("good food\nbad food\nvery good\nbad\n")
    path = tmp_path / "r.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": "demo",
                "artifacts": str(tmp_path / "artifacts"),
                "label": {"input": "data/texts.txt", "labels": LABELS},
                "train": {"epochs": 1},
            }
        )
    )
    return path


def run(path: Path, *sets: str) -> list[pipeline.Step]:
    lines: list[str] = []
    steps = pipeline.run_pipeline(pipeline.load_recipe(path, list(sets)), say=lines.append, report=False)
    run.lines = lines  # type: ignore[attr-defined]
    return steps


def test_wires_each_stage_to_the_previous_folder_and_resolves_paths_next_to_the_recipe(fake, recipe, tmp_path):
    run(recipe)
    label_cfg, train_cfg, export_cfg = (c[1] for c in fake.calls)
    root = tmp_path / "artifacts" / "demo"
    assert Path(label_cfg.input) == tmp_path / "data" / "texts.txt"
    assert Path(train_cfg.data) == root / "label"
    assert Path(export_cfg.model) == root / "train"
    for stage in ("label", "train", "export"):
        require_finished(root / stage, stage)
    assert json.loads((root / "pipeline.json").read_text())["stages"]["export"]["state"] == "finished"


def test_second_run_skips_everything(fake, recipe):
    run(recipe)
    fake.ran()
    steps = run(recipe)
    assert fake.ran() == []
    assert [s.action for s in steps] == ["skip", "skip", "skip"]
    assert any(line.startswith("train: skipped") for line in run.lines)


def test_dry_run_estimates_only_and_keeps_the_finished_label_run(fake, recipe, tmp_path):
    run(recipe)
    fake.ran()
    label_dir = tmp_path / "artifacts" / "demo" / "label"
    before = (label_dir / "labels.jsonl").read_text()
    for sets in (["label.dry_run=true"], ["label.dry_run=true", "label.max_rows=2"]):  # same, then changed settings
        run(recipe, *sets)
        assert fake.ran() == ["label"]  # no train, no export
        assert (label_dir / "labels.jsonl").read_text() == before
        require_finished(label_dir, "label")
        assert any("dry run" in line for line in run.lines)


def test_export_change_reruns_export_only(fake, recipe):
    run(recipe)
    fake.ran()
    run(recipe, "export.quantize=none")
    assert fake.ran() == ["export"]


def test_train_change_reruns_train_and_export(fake, recipe):
    run(recipe)
    fake.ran()
    run(recipe, "train.learning_rate=1e-4")
    (train_stage, train_cfg), (export_stage, _) = fake.calls
    assert (train_stage, export_stage) == ("train", "export")
    assert train_cfg.learning_rate == 1e-4  # the new setting reached the stage that re-ran


def test_label_change_reruns_all_three(fake, recipe):
    run(recipe)
    fake.ran()
    run(recipe, "label.instructions=Is this review positive?")
    assert fake.ran() == ["label", "train", "export"]


def test_edited_input_file_reruns_all_three(fake, recipe, tmp_path):
    run(recipe)
    fake.ran()
    (tmp_path / "data" / "texts.txt").write_text("good food\nbad food\n")
    run(recipe)
    assert fake.ran() == ["label", "train", "export"]


def test_explicit_train_data_is_not_tied_to_the_label_stage(fake, recipe, tmp_path):
    labeled = tmp_path / "labeled.jsonl"
    labeled.write_text('{"text": "a", "label": "positive"}\n')
    run(recipe, f"train.data={labeled}")
    assert Path(fake.calls[1][1].data) == labeled
    fake.ran()
    run(recipe, f"train.data={labeled}", "label.instructions=Another prompt")
    assert fake.ran() == ["label"]


def test_a_stage_rerun_by_hand_is_not_trusted(fake, recipe, tmp_path):
    run(recipe)
    fake.ran()
    # Someone re-ran train into the same folder with other settings: the manifest no longer matches.
    cfg = pipeline.stage_configs(pipeline.load_recipe(recipe))["train"]
    cfg.seed = 7
    fake.train(cfg, tmp_path / "artifacts" / "demo" / "train")
    fake.ran()
    run(recipe)
    assert fake.ran() == ["train", "export"]


def test_interrupted_train_resumes_from_its_checkpoints(fake, recipe):
    fake.fail_in = "train"
    with pytest.raises(KeyboardInterrupt):
        run(recipe)
    assert fake.ran() == ["label", "train"]
    fake.fail_in = None
    steps = run(recipe)
    assert [s.action for s in steps] == ["skip", "resume", "run"]
    assert fake.calls[0][0] == "train" and fake.calls[0][1].resume is True
    assert fake.ran() == ["train", "export"]
    # resume is how a run proceeds, not what it makes: the finished train run is now skipped.
    assert [s.action for s in run(recipe)] == ["skip", "skip", "skip"]


def test_label_with_unanswered_rows_is_retried_next_time(fake, recipe):
    fake.label_errors = 2
    run(recipe)
    assert any("2 rows got no answer (timeout)" in line for line in run.lines)
    fake.label_errors = 0
    fake.ran()
    assert [s.action for s in run(recipe)] == ["resume", "run", "run"]
    assert [s.action for s in run(recipe)] == ["skip", "skip", "skip"]


def test_changed_settings_start_a_stage_from_an_empty_folder(fake, recipe, tmp_path):
    run(recipe)
    stale = tmp_path / "artifacts" / "demo" / "export" / "model.with_tokenizer.onnx"
    stale.write_bytes(b"old")
    run(recipe, "export.quantize=none")
    assert not stale.exists()


def test_plan_prints_an_estimate_per_stage(fake, recipe):
    run(recipe)
    label_line, train_line, export_line = run.lines[1:4]
    assert label_line.split()[0] == "label" and "4 rows, embedded teacher, ~" in label_line
    assert "rows x 1 epochs at most" in train_line
    assert export_line.split()[:3] == ["export", "~1-4", "min"]
    assert run.lines[-1].startswith("export: done in")


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["train.learning_rate=0"], r"r\.yaml \(with --set\): train\.learning_rate: Input should be greater than 0"),
        (["train.lr=0.1"], r"train\.lr: unknown key"),
        (["label.labels=[only]"], r"label\.labels: needs at least two"),
        (["label.input="], r"label\.input: the recipe must name the texts to label"),
        (["name=my run"], r"name: 'my run': use letters, digits"),
        (["train.epochs"], r"--set 'train\.epochs': expected STAGE\.KEY=VALUE"),
        (["train.epochs=[1"], r"not a valid YAML value"),
        (["name.x=1"], r"--set 'name\.x=1': name is a value, not a section"),
    ],
)
def test_bad_recipes_name_the_key(recipe, sets, message):
    with pytest.raises(BadInput, match=message):
        pipeline.load_recipe(recipe, sets)


def test_set_values_are_yaml_scalars(recipe):
    cfg = pipeline.load_recipe(recipe, ["train.epochs=2.5", "export.with_tokenizer=true", "label.labels=[a, b, c]"])
    assert cfg.train.epochs == 2.5 and cfg.export.with_tokenizer is True and cfg.label.labels == ["a", "b", "c"]


def test_missing_recipe_file(tmp_path):
    with pytest.raises(BadInput, match=r"nope\.yaml: no such recipe file"):
        pipeline.load_recipe(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("sets", "expected"),
    [
        ([], "~34 rows x 1 epochs"),  # 40 rows, 6 (15%) held out for validation
        (["train.epochs=3"], "~34 rows x 3 epochs"),
        (["train.val_fraction=0.5"], "~20 rows x 1 epochs"),
        (["train.val_max_rows=4"], "~36 rows x 1 epochs"),
    ],
)
def test_plan_estimates_the_rows_and_epochs_train_will_run(recipe, tmp_path, sets, expected):
    # The numbers are written out, not recomputed with the estimate's own formula: train's split
    # (tests/unit/test_train.py pins 15 of 100) and the estimate must both give them.
    (tmp_path / "data" / "texts.txt").write_text("".join(f"{'good' if i % 2 else 'bad'} text {i}\n" for i in range(40)))
    note = next(s.note for s in pipeline.plan(pipeline.load_recipe(recipe, sets)) if s.stage == "train")
    assert expected in note


@pytest.mark.parametrize(("rows", "expected"), [(40, "mpnet student"), (2600, "minilm student")])
def test_plan_names_the_student_that_auto_picks_for_the_rows(recipe, tmp_path, rows, expected):
    (tmp_path / "data" / "texts.txt").write_text("".join(f"{'good' if i % 2 else 'bad'} text {i}\n" for i in range(rows)))
    note = next(s.note for s in pipeline.plan(pipeline.load_recipe(recipe, ["train.student=auto"])) if s.stage == "train")
    assert note.startswith("mpnet student" if shutil.which("nvidia-smi") else expected)  # on a GPU, always mpnet


def test_the_plan_imports_no_torch(recipe):
    code = f"import sys; from distill.run import chain as pipeline; pipeline.plan(pipeline.load_recipe({str(recipe)!r})); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_filling_teacher_cache_is_not_a_changed_setting(fake, recipe, tmp_path):
    cache = tmp_path / "cache.sqlite"
    cache.write_bytes(b"v1")
    run(recipe, f"label.cache={cache}")
    cache.write_bytes(b"v2: more answers")
    fake.ran()
    assert [s.action for s in run(recipe, f"label.cache={cache}")] == ["skip", "skip", "skip"]


def test_pipeline_state_never_holds_a_key_from_the_base_url(fake, recipe, tmp_path):
    run(recipe, "label.base_url=https://user:sk-secret@example.com/v1?api-key=sk-other",
        "label.reuse_answers_from=https://old.example.com/v1?key=sk-third")
    state = (tmp_path / "artifacts" / "demo" / "pipeline.json").read_text()
    assert not any(k in state for k in ("sk-secret", "sk-other", "sk-third")) and "https://example.com/v1" in state


def test_gold_texts_count_for_the_teacher_not_for_training(recipe, tmp_path):
    gold = tmp_path / "gold.csv"
    gold.write_text("text,label\nnice,positive\nawful,negative\nfine,positive\n")
    cfg = pipeline.load_recipe(recipe, [f"label.gold={gold}"])
    notes = {s.stage: s.note for s in pipeline.plan(cfg)}
    # 4 inputs + 3 gold for the teacher; 4 inputs less 2 held out for validation (one per label) for train
    assert notes["label"].startswith("7 rows") and "~2 rows x" in notes["train"]
    assert pipeline.stage_configs(cfg)["train"].gold == str(gold)  # train scores the student on the same file


def test_rows_beyond_label_max_rows_are_self_training_text(recipe):
    cfg = pipeline.stage_configs(pipeline.load_recipe(recipe, ["label.max_rows=10"]))
    assert cfg["train"].unlabeled == cfg["label"].input  # train drops the rows the teacher labeled
    assert pipeline.stage_configs(pipeline.load_recipe(recipe, ["label.max_rows=10", "train.self_training_rounds=0"]))["train"].unlabeled is None
    assert pipeline.stage_configs(pipeline.load_recipe(recipe))["train"].unlabeled is None  # everything labeled
