"""`distill run RECIPE`: label -> (audit) -> train -> export from one YAML recipe.

    distill run pipelines/restaurant-reviews.yaml
    distill run pipelines/restaurant-reviews.yaml --set train.epochs=2 --set export.quantize=none

Each stage writes `<artifacts>/<name>/<stage>/` with the stage function the stand-alone command uses;
this module is only the chain. Its memory is `<artifacts>/<name>/pipeline.json`: for every stage, the key
it ran with and the manifest it left. A stage is skipped when its folder holds a finished run (manifest)
that this pipeline recorded under the same key. The key hashes the stage's settings, the contents of the
input files it names, and the key of the stage it reads from, so a label change re-runs train and export
while an export change re-runs export alone. A stage that stopped half-way is run again in place: label
picks up its answers from the teacher cache, train resumes from its last checkpoint.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from distill.config import PipelineConfig, apply_sets, build, load_yaml
from distill.formatting import duration, megabytes, pct, span
from distill.metrics import engine_rows
from distill.run.forecast import estimate
from distill.runs import (
    MANIFEST, PIPELINE_JSON, STAGES, UPSTREAM, RunLock, check_out, clear_folder, is_finished, previous_run, read_json,
    read_metrics, require_finished, settings_hash, write_json,
)  # fmt: skip

# Settings that point at files or folders; relative ones may be written relative to the recipe.
PATH_KEYS = {
    "label": ("input", "gold", "labels_file", "examples_file", "teacher_model", "cache", "corrections"),
    "train": ("data", "gold", "student", "unlabeled", "corrections"),
    "export": ("model",),
    "audit": ("label_run", "corrections", "cache", "review_teacher_model"),
}
# Input files whose bytes are part of a stage's key (an edited file is a changed setting). Not the teacher
# cache (it changes as it fills) nor the GGUF (hundreds of MB; its path is in the settings).
CONTENT_KEYS = {"label": ("input", "gold", "labels_file", "examples_file", "corrections"), "audit": ("corrections",),
                "train": ("data", "gold", "unlabeled", "corrections"), "export": ()}
# Settings that change how a run proceeds, not what it produces: left out of the key.
NOT_IN_KEY = {"train": ("resume",), "label": ("dry_run",)}

Say = Callable[[str], None]


# --- recipe -------------------------------------------------------------------------------------------


def load_recipe(path: str | Path, sets: list[str] | None = None) -> PipelineConfig:
    """Read, override and validate a recipe. Errors name the key: `recipe.yaml: train.learning_rate: ...`."""
    path = Path(path)
    data = apply_sets(load_yaml(path), list(sets or []))
    source = f"{path}" + (" (with --set)" if sets else "")
    cfg: PipelineConfig = build(PipelineConfig, data, source)
    _resolve_paths(cfg, path.parent)
    return cfg


def _resolve_paths(cfg: PipelineConfig, recipe_dir: Path) -> None:
    """A relative path that exists next to the recipe is taken from there; otherwise it stays as written
    (relative to where `distill run` is started)."""
    for stage, keys in PATH_KEYS.items():
        section = getattr(cfg, stage)
        for key in keys if section is not None else ():
            value = getattr(section, key)
            if value and not Path(value).is_absolute() and (recipe_dir / value).exists():
                setattr(section, key, str(recipe_dir / value))


# --- plan ---------------------------------------------------------------------------------------------


@dataclass
class Step:
    stage: str
    out: Path
    config: Any
    key: str
    action: str = "run"  # "run", "skip" (finished with this key) or "resume" (stopped half-way with this key)
    seconds: tuple[float, float] = (0.0, 0.0)  # estimate, low and high
    note: str = ""
    result: dict[str, Any] = field(default_factory=dict)


def stage_configs(cfg: PipelineConfig) -> dict[str, Any]:
    """Each stage's config, with its input wired to the previous stage's folder unless the recipe set it."""
    root = run_root(cfg)
    configs = {stage: getattr(cfg, stage).model_copy(deep=True) for stage in STAGES if getattr(cfg, stage) is not None}
    for stage, (key, upstream) in UPSTREAM.items():
        if stage in configs and not getattr(configs[stage], key):
            setattr(configs[stage], key, str(root / upstream))
    if configs["train"].gold is None:  # one gold file scores teacher (label) and student (train)
        configs["train"].gold = configs["label"].gold
    # The texts beyond label.max_rows are the ones the teacher never labeled: train self-trains on them
    # (train drops whatever the teacher did label, so the whole input can be passed).
    label = configs["label"]
    # A person's corrections given to the audit are the label stage's too: it re-runs (from the cache) with them.
    if "audit" in configs and configs["audit"].corrections and not label.corrections:
        label.corrections = configs["audit"].corrections
    never_asked = label.max_rows or label.budget or label.active  # label --budget keeps the rows it did not choose
    if configs["train"].unlabeled is None and never_asked and label.input and configs["train"].self_training_rounds > 0:
        configs["train"].unlabeled, configs["train"].unlabeled_text_column = label.input, label.text_column
    return configs


def wired_upstream(stage: str, config: Any, root: Path) -> str | None:
    """The stage whose pipeline folder this one reads; None when the recipe points it elsewhere."""
    if stage not in UPSTREAM:
        return None
    key, up = UPSTREAM[stage]
    return up if Path(getattr(config, key)) == root / up else None


def run_root(cfg: PipelineConfig) -> Path:
    return Path(cfg.artifacts) / cfg.name


def stage_keys(cfg: PipelineConfig, configs: dict[str, Any]) -> dict[str, str]:
    """The identity of each stage's output: its settings, the bytes of the files it names, its upstream key."""
    keys: dict[str, str] = {}
    root = run_root(cfg)
    for stage in configs:
        settings = configs[stage].resolved()
        for k in NOT_IN_KEY.get(stage, ()):
            settings.pop(k, None)
        inputs = {k: _file_digest(settings.get(k)) for k in CONTENT_KEYS[stage] if _file_digest(settings.get(k))}
        upstream = ""
        up = wired_upstream(stage, configs[stage], root)
        if up:
            upstream = keys[up]
            settings[UPSTREAM[stage][0]] = f"<{up} stage>"  # the folder's name is not what matters, its key is
        keys[stage] = settings_hash({"settings": settings, "inputs": inputs, "upstream": upstream})
    return keys


def _file_digest(value: Any) -> str | None:
    """Content hash of a file setting, so an edited input file counts as a changed setting."""
    if not isinstance(value, str) or not value or not Path(value).is_file():
        return None
    h = hashlib.sha256()
    with open(value, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def plan(cfg: PipelineConfig) -> list[Step]:
    """What `run` would do for each stage, with a rough duration; reads files, changes nothing."""
    root = run_root(cfg)
    state = _read_state(root)
    configs = stage_configs(cfg)
    keys = stage_keys(cfg, configs)
    steps = []
    for stage in configs:
        out = root / stage
        record = state.get("stages", {}).get(stage, {})
        step = Step(stage, out, configs[stage], keys[stage])
        # A stage whose input folder is being rewritten must run again too, even under the same key.
        up = wired_upstream(stage, step.config, root)
        upstream_runs = up is not None and next(s for s in steps if s.stage == up).action != "skip"
        if record.get("key") == keys[stage] and not upstream_runs:
            intact = _recorded_finish_intact(out, stage, record) and not record.get("retry")
            step.action = "skip" if intact else "resume"
        if stage == "train" and step.action == "resume" and _has_checkpoints(out):
            step.config.resume = True
        steps.append(step)
    estimate(cfg, steps)
    return steps


def _recorded_finish_intact(out: Path, stage: str, record: dict) -> bool:
    if record.get("state") != "finished" or not is_finished(out):
        return False
    manifest = read_json(out / MANIFEST)
    return (
        manifest.get("stage") == stage
        and manifest.get("settings_hash") == record.get("settings_hash")
        and manifest.get("finished_at") == record.get("finished_at")
    )


def _has_checkpoints(out: Path) -> bool:
    """Train keeps its Trainer checkpoints in <run>/checkpoints/checkpoint-N until it finishes."""
    return any(p.is_dir() for p in (out / "checkpoints").glob("checkpoint-*"))


def describe_plan(cfg: PipelineConfig, steps: list[Step]) -> list[str]:
    lines = [f"distill run {cfg.name}: {' -> '.join(s.stage for s in steps)} into {run_root(cfg)}/"]
    for s in steps:
        when = "skip" if s.action == "skip" else "~" + span(*s.seconds)
        resume = " (resume)" if s.action == "resume" else ""
        lines.append(f"  {s.stage:<8}{when:<12}{s.note}{resume}")
    lo = sum(s.seconds[0] for s in steps)
    hi = sum(s.seconds[1] for s in steps)
    lines.append(f"  {'total':<8}~{span(lo, hi)}")
    return lines


# --- run ----------------------------------------------------------------------------------------------


def stage_function(stage: str) -> Callable[[Any, Path], dict]:
    """The stand-alone stage function (`distill.label.label`, ...), imported only when it is needed."""
    import importlib

    return getattr(importlib.import_module(f"distill.{stage}"), stage)


def run_pipeline(cfg: PipelineConfig, say: Say = lambda line: None, report: bool = True, overwrite: bool = False) -> list[Step]:
    """Run what the plan says to run, one stage after another; write the report at the end.

    The recipe's folder is locked for the whole chain (a second `distill run` of it fails at once), and a stage
    folder is emptied only when this recipe's pipeline.json says it wrote what is there; anything else there
    is refused, as the stand-alone stages refuse it, unless `overwrite`.
    """
    root = run_root(cfg)
    if cfg.label.dry_run:
        return _dry_run(cfg, root, say)
    root.mkdir(parents=True, exist_ok=True)
    lock = RunLock(root).acquire()
    try:
        return _run_locked(cfg, root, say, report, overwrite)
    finally:
        lock.release()


def _dry_run(cfg: PipelineConfig, root: Path, say: Say) -> list[Step]:
    """Only the estimate: no folder is touched (a finished label run stays), no later stage runs."""
    steps = plan(cfg)
    dry = stage_function("label")(cfg.label, root / "label")
    say(f"label: dry run, nothing sent to the teacher: {result_line('label', dry)}")
    say("stopping here: set label.dry_run to false to label, train and export.")
    return steps[:1]


def _run_locked(cfg: PipelineConfig, root: Path, say: Say, report: bool, overwrite: bool) -> list[Step]:
    steps = plan(cfg)
    for line in describe_plan(cfg, steps):
        say(line)
    state = _read_state(root)
    from distill.secrets import redact_url

    recorded = cfg.resolved()
    for section in recorded.values():  # keys can hide in a URL (base_url, reuse_answers_from); never write them
        if isinstance(section, dict):
            section.update({k: redact_url(v) for k, v in section.items() if "url" in k or k == "reuse_answers_from"})
    state["recipe"] = {"name": cfg.name, "description": cfg.description, "settings": recorded}
    stages = state.setdefault("stages", {})
    for step in steps:
        if step.action == "skip":
            step.result = read_metrics(step.out)
            say(f"{step.stage}: skipped, finished earlier with the same settings: {result_line(step.stage, step.result)}")
            continue
        if step.action == "run" and step.out.exists():
            if _owned(step.out, step.stage, stages.get(step.stage)):
                # This recipe's own older output: its leftovers (an old model.with_tokenizer.onnx, old
                # checkpoints) must not leak into the new run.
                lock = RunLock(step.out).acquire()
                try:
                    clear_folder(step.out)
                finally:
                    lock.release()
            else:
                check_out(step.out, step.stage, step.config.resolved(), overwrite)
        stages[step.stage] = {"key": step.key, "state": "running", "started_at": _now()}
        write_json(root / PIPELINE_JSON, state)
        t0 = time.perf_counter()
        extra = {"overwrite": True} if overwrite else {}
        step.result = stage_function(step.stage)(step.config, step.out, **extra) or {}
        seconds = time.perf_counter() - t0
        manifest = require_finished(step.out, step.stage)
        stages[step.stage] = {
            "key": step.key,
            "state": "finished",
            "settings_hash": manifest["settings_hash"],
            "finished_at": manifest["finished_at"],
            "seconds": round(seconds, 2),
        }
        say(f"{step.stage}: done in {duration(seconds)}: {result_line(step.stage, step.result)}")
        if step.stage == "label" and step.result.get("errors"):
            # Unanswered rows are not cached, so the next run asks for them again (and re-trains on the result).
            stages["label"]["retry"] = True
            say(f"label: warning: {step.result['errors']} rows got no answer ({step.result.get('last_error')}); "
                "they are left out of training. Run the same command again to retry them.")
        write_json(root / PIPELINE_JSON, state)
    if report:
        from distill.run.report import build_report

        path = build_report(root)
        say(f"report: {path}")
    return steps


def _owned(out: Path, stage: str, record: dict | None) -> bool:
    """Whether what `out` holds is what this recipe wrote there (its pipeline.json record), so it may go."""
    prev = previous_run(out)
    if prev is None:
        return True
    if not record or prev.stage != stage:
        return False
    if not prev.finished:
        return True  # this recipe's interrupted run (the record says it started one here)
    manifest = read_json(out / MANIFEST)
    return manifest.get("finished_at") == record.get("finished_at") and manifest.get("settings_hash") == record.get("settings_hash")


def _read_state(root: Path) -> dict[str, Any]:
    path = root / PIPELINE_JSON
    if not path.is_file():
        return {}
    try:
        state = read_json(path)
    except ValueError:
        return {}  # a damaged state file only costs a re-run
    return state if isinstance(state, dict) else {}


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def result_line(stage: str, m: dict[str, Any]) -> str:
    """One line that says what a stage produced, from its metrics.json (missing keys are left out)."""

    def share(key: str) -> str:
        return pct(m.get(key), missing="")

    parts: list[str | None] = []
    if stage == "label":
        parts = [
            f"{m['rows']} rows" if "rows" in m else None,
            "WARNING: no log-probabilities from the teacher, labels without probabilities" if m.get("mode") == "json" else None,
            f"{m['no_text']} rows without text (not sent)" if m.get("no_text") else None,
            f"{m['invalid']} invalid answers" if m.get("invalid") else None,
            f"{m['errors']} failed requests (run again to retry them)" if m.get("errors") else None,
            f"{share('low_confidence_share')} unsure" if share("low_confidence_share") else None,
            f"{m['teacher_calls']} teacher calls, {m.get('cached', 0)} answers from the cache" if "teacher_calls" in m else None,
            f"${m['cost_usd']:.4f}" if m.get("cost_usd") else None,
            f"estimated ${m['est_cost_usd']:.4f} for {m.get('est_prompt_tokens', '?')} prompt tokens" if m.get("est_cost_usd") is not None else None,
        ]
    elif stage == "train":
        parts = [
            f"val accuracy {share('val_accuracy')}" if share("val_accuracy") else None,
            f"macro F1 {share('val_macro_f1')}" if share("val_macro_f1") else None,
            f"gold accuracy {share('gold_accuracy')}" if share("gold_accuracy") else None,
            f"teacher's gold accuracy {share('teacher_gold_accuracy')}" if share("teacher_gold_accuracy") else None,
            f"{m['train_rows']} training rows" if "train_rows" in m else None,
        ]
    elif stage == "audit":
        parts = [f"{m['suspects']} suspects among {m['rows_audited']} labeled texts" if "suspects" in m else None,
                 f"{m['review_changed']} of {m['reviewed']} re-asked answers changed" if "reviewed" in m else None]
    elif stage == "export":
        parts = [_export_summary(m), f"note: {m['int8_accuracy_note']}" if m.get("int8_accuracy_note") else None]
    return ", ".join(p for p in parts if p) or "finished"


def _export_summary(m: dict[str, Any]) -> str | None:
    rows = engine_rows(m)
    if not rows:
        return None
    best = rows[-1]
    bits = [best["name"]]
    if best.get("size_bytes") is not None:
        bits.append(megabytes(best["size_bytes"]))
    if best.get("latency_ms_batch1") is not None:
        bits.append(f"{best['latency_ms_batch1']:.2f} ms/text")
    if best.get("val_accuracy") is not None:
        bits.append(f"accuracy {pct(best['val_accuracy'])}")
    return " ".join(bits[:1]) + ": " + ", ".join(bits[1:]) if len(bits) > 1 else bits[0]
