"""Run folders that describe themselves.

Every stage writes into one folder:
    config.json    resolved settings + the command line + versions (never secrets)
    metrics.json   what was measured
    README.md      a short card
    manifest.json  written last: its presence means "this run finished"

`start_run` removes a stale manifest first, so a folder being rewritten never looks finished.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from distill import __version__
from distill.errors import BadInput

MANIFEST = "manifest.json"


def write_json(path: Path, obj: Any) -> None:
    """Write JSON atomically (tmp file + rename) so a crash never leaves half a file behind."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False, default=str)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


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
        run_dir / "config.json",
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
    write_json(run_dir / "metrics.json", metrics)
    (run_dir / "README.md").write_text(card, encoding="utf-8")
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
