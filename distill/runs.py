"""Run folders that describe themselves: the file names every stage writes and reads, and how they are written.

Every stage writes into one folder:
    config.json    resolved settings + the command line + versions (never secrets)
    metrics.json   what was measured
    README.md      a short card
    manifest.json  written last: its presence means "this run finished"
and its outputs: labels.jsonl and gold.jsonl (label), model/ and val.jsonl (train), model*.onnx and
labels.json (export). Every file is written beside its final name and moved into place (`write_json`,
`write_jsonl`), so a crash never leaves half a file. `start_run` removes a stale manifest first, so a
folder being rewritten never looks finished.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Iterable, Iterator

from distill import __version__
from distill.errors import BadInput

# The stages in the order a recipe chains them; each writes <artifacts>/<recipe>/<stage>/.
# audit is optional: it runs only when the recipe has an `audit:` section.
STAGES = ("label", "audit", "train", "export")
OPTIONAL_STAGES = ("audit",)
# The setting through which a stage names the run folder it reads: train.data is a label run, export.model a train run.
UPSTREAM = {"audit": ("label_run", "label"), "train": ("data", "label"), "export": ("model", "train")}

# Every run folder.
CONFIG_JSON = "config.json"
METRICS_JSON = "metrics.json"
CARD_MD = "README.md"
MANIFEST = "manifest.json"
# A stage's outputs that the next stage reads.
LABELS_JSONL = "labels.jsonl"  # label: one line per input row, in input order
GOLD_JSONL = "gold.jsonl"  # label: the teacher's answers on the gold texts (never trained on)
MODEL_DIR = "model"  # train: the student, safetensors + tokenizer
VAL_JSONL = "val.jsonl"  # train: the validation split, on which the export checks int8 accuracy
# `distill run`'s memory and its report, in <artifacts>/<recipe>/.
PIPELINE_JSON = "pipeline.json"
REPORT_HTML = "report.html"


@contextmanager
def atomic_open(path: Path) -> Iterator[IO[str]]:
    """A text file written beside `path` and moved onto it only when complete: a crash never leaves half a file."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        yield f
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_json(path: Path, obj: Any) -> None:
    with atomic_open(path) as f:
        json.dump(obj, f, indent=2, ensure_ascii=False, default=str)
        f.write("\n")


def read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    with atomic_open(path) as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every row of a JSONL file (blank lines skipped); a line that is not JSON is a BadInput naming it."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise BadInput(f"{path}:{n}: not a JSON line ({e.msg}); the file is damaged, run its stage again") from None
    return rows


def read_metrics(run_dir: Path | None) -> dict[str, Any]:
    """A run's metrics.json, or {} when there is none."""
    path = Path(run_dir) / METRICS_JSON if run_dir else None
    return read_json(path) if path and path.is_file() else {}


def read_settings(run_dir: Path) -> dict[str, Any]:
    """The resolved settings a run recorded in config.json, or {} when there is none."""
    path = Path(run_dir) / CONFIG_JSON
    return read_json(path).get("settings", {}) if path.is_file() else {}


def settings_hash(settings: dict[str, Any]) -> str:
    """A stable hash of resolved settings: the same settings give the same hash on any machine."""
    blob = json.dumps(settings, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def start_run(run_dir: Path, stage: str, settings: dict[str, Any], argv: list[str] | None = None) -> Path:
    """Create (or reopen) a run folder and record what is about to run."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / MANIFEST).unlink(missing_ok=True)
    write_json(
        run_dir / CONFIG_JSON,
        {
            "stage": stage,
            "settings": settings,
            "settings_hash": settings_hash(settings),
            "command": list(sys.argv if argv is None else argv),
            "distill_version": __version__,
            "python": platform.python_version(),
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
    )
    return run_dir


def finish_run(run_dir: Path, stage: str, settings: dict[str, Any], metrics: dict[str, Any], card: str) -> dict:
    """Write metrics, the card, and last of all the manifest listing every file with its size."""
    run_dir = Path(run_dir)
    write_json(run_dir / METRICS_JSON, metrics)
    with atomic_open(run_dir / CARD_MD) as f:
        f.write(card)
    files = sorted(
        str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if p.is_file() and p.name != MANIFEST
    )
    manifest = {
        "stage": stage,
        "settings_hash": settings_hash(settings),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "distill_version": __version__,
        "files": {f: (run_dir / f).stat().st_size for f in files},
    }
    write_json(run_dir / MANIFEST, manifest)
    return manifest


def is_finished(run_dir: Path) -> bool:
    return (Path(run_dir) / MANIFEST).is_file()


def require_finished(run_dir: Path, stage: str) -> dict:
    """The manifest of a finished run of `stage`, or a BadInput that says what to run first."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise BadInput(f"{run_dir}: no such run folder. Run `distill {stage}` first, or check the path.")
    if not is_finished(run_dir):
        raise BadInput(
            f"{run_dir}: not a finished {stage} run (no {MANIFEST}). "
            f"Run `distill {stage} ... --out {run_dir}` again to finish it."
        )
    manifest = read_json(run_dir / MANIFEST)
    if manifest.get("stage") != stage:
        raise BadInput(f"{run_dir}: is a {manifest.get('stage')!r} run, expected a {stage!r} run.")
    return manifest
