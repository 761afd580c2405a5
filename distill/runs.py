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

A stage never writes into a folder it does not own (`claim`): a finished run of another stage, a finished
run of the same stage with other settings, or files that are not a run are refused unless the user says
`--overwrite`; the check reads only, so a refused or failed command leaves the folder as it was. While a
stage writes, it holds an flock on RUN/.distill.lock: a second process fails at once and is told which PID
holds the folder, and the kernel drops the lock when the holder dies, even by SIGKILL.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import platform
import shutil
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
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
LOCK_FILE = ".distill.lock"
# What a stage may leave before its config.json exists (the lock, the embedded teacher's log, a submitted
# batch, export's scratch folder): a folder holding only these is as good as empty.
SCRATCH = {LOCK_FILE, "teacher-server.log", ".work", "batch.json"}
# Settings that change how a run proceeds, not what it produces: a rerun that differs only in these is the
# same run (raising --max-cost or --max-rows to label the rest is the documented way to continue).
HOW_NOT_WHAT = {
    "label": {"concurrency", "timeout", "max_retries", "dry_run", "max_cost", "max_rows", "price_in", "price_out", "batch",
              "batch_poll_seconds", "cache", "threads", "reuse_answers_from"},
    "train": {"resume"},
    "export": {"latency_texts", "threads"},
}


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


def start_run(
    run_dir: Path, stage: str, settings: dict[str, Any], argv: list[str] | None = None, replace: bool = False
) -> Path:
    """Create (or reopen) a run folder and record what is about to run.

    replace: the folder holds another run the user asked to overwrite (`claim(...).replace`): its recorded
    files go first, so the new manifest never lists the old run's outputs.
    """
    from distill.secrets import redact_argv

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if replace:
        clear_previous(run_dir)
    (run_dir / MANIFEST).unlink(missing_ok=True)
    write_json(
        run_dir / CONFIG_JSON,
        {
            "stage": stage,
            "settings": settings,
            "settings_hash": settings_hash(settings),
            "command": redact_argv(list(sys.argv if argv is None else argv)),
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
        str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if p.is_file() and p.name not in (MANIFEST, LOCK_FILE)
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


# --- who owns a run folder ----------------------------------------------------------------------------


@dataclass
class Previous:
    """What a run folder holds now."""

    stage: str | None  # None: files that are not a distill run
    settings: dict[str, Any]
    finished: bool


def previous_run(run_dir: Path) -> Previous | None:
    """The run a folder holds, None for a missing or empty folder. Reads only."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return None
    names = {p.name for p in run_dir.iterdir()} - SCRATCH
    if not names:
        return None
    finished = MANIFEST in names
    try:
        config = read_json(run_dir / CONFIG_JSON) if CONFIG_JSON in names else None
        manifest = read_json(run_dir / MANIFEST) if finished else {}
    except (OSError, ValueError):
        return Previous("(damaged)", {}, finished)
    if not isinstance(config, dict):
        stage = manifest.get("stage") if isinstance(manifest, dict) else None
        return Previous(stage, {}, finished)
    return Previous(config.get("stage"), config.get("settings") or {}, finished)


def _answers_from(settings: dict[str, Any]) -> dict[str, Any]:
    # A label run's answers come from the address they are keyed by: --reuse-answers-from OLD_URL at a new
    # --base-url continues the run that asked OLD_URL.
    return {**settings, "base_url": settings.get("reuse_answers_from") or settings.get("base_url")}


def changed_settings(stage: str, before: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """Settings (not counting HOW_NOT_WHAT) whose value differs between two runs of one stage."""
    if stage == "label":
        before, now = _answers_from(before), _answers_from(now)
    keys = (set(before) | set(now)) - HOW_NOT_WHAT.get(stage, set())
    return sorted(k for k in keys if before.get(k) != now.get(k))


def check_out(run_dir: Path, stage: str, settings: dict[str, Any], overwrite: bool = False,
              reads: Iterable[str | Path | None] = ()) -> bool:
    """Whether `stage` may write into `run_dir`, reading only. Returns True when a previous run is to be
    replaced (--overwrite); raises BadInput naming the folder and the fix otherwise."""
    run_dir = Path(run_dir)
    for src in reads:
        if src and Path(src).exists() and run_dir.exists() and os.path.samefile(src, run_dir):
            raise BadInput(f"--out {run_dir}: is the folder this {stage} run reads from; write to another --out")
    if run_dir.exists() and not run_dir.is_dir():
        raise BadInput(f"--out {run_dir}: is a file, not a folder; pass a folder path (it is created if missing)")
    prev = previous_run(run_dir)
    if prev is None:
        return False
    fix = "choose another --out, or pass --overwrite to replace it"
    if prev.stage is None:
        if overwrite:
            return False  # writes beside the user's files; never deletes what is not a run's
        shown = sorted(p.name for p in run_dir.iterdir() if p.name not in SCRATCH)[:5]
        raise BadInput(f"--out {run_dir}: holds files that are not a distill run ({', '.join(shown)}); "
                       "choose a new or empty folder, or pass --overwrite to write beside them")
    what = "a finished" if prev.finished else "an unfinished"
    if prev.stage != stage:
        if overwrite:
            return True
        raise BadInput(f"--out {run_dir}: holds {what} {prev.stage} run, which a {stage} run would overwrite; {fix}")
    changed = changed_settings(stage, prev.settings, settings) if prev.finished else []
    if changed:
        if overwrite:
            return True
        shown = ", ".join(changed[:6]) + (", ..." if len(changed) > 6 else "")
        raise BadInput(f"--out {run_dir}: holds a finished {stage} run with other settings ({shown}); the same "
                       f"settings would resume it. To keep it, {fix}")
    return False


def clear_previous(run_dir: Path) -> None:
    """Remove what the previous run recorded (its manifest's files and its own four), nothing else."""
    run_dir = Path(run_dir)
    listed: list[str] = []
    with contextlib.suppress(OSError, ValueError, AttributeError):
        listed = list(read_json(run_dir / MANIFEST).get("files") or {})
    for name in [*listed, CONFIG_JSON, METRICS_JSON, CARD_MD, MANIFEST]:
        path = run_dir / name
        if path.resolve().is_relative_to(run_dir.resolve()) and path.is_file():
            path.unlink()
    for d in sorted((p for p in run_dir.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        with contextlib.suppress(OSError):
            d.rmdir()  # only empty ones: the old run's folders (model/), never the user's files


class RunLock:
    """An flock on RUN/.distill.lock for as long as a stage writes the folder.

    flock belongs to the open file, so the kernel releases it when the process ends however it ends; the
    file holds the holder's PID for the message the next process prints. Released locks unlink their file;
    a process that opened the old file just before that checks the inode and tries again.
    """

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK_FILE
        self.fd: int | None = None

    def acquire(self) -> "RunLock":
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError as e:
                raise BadInput(f"--out {self.path.parent}: cannot write there ({e.strerror}); choose another --out") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "unknown"
                os.close(fd)
                if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise BadInput(f"--out {self.path.parent}: cannot lock it ({e.strerror}); choose another --out") from None
                raise BadInput(
                    f"--out {self.path.parent}: another distill process (PID {holder}) is writing this run folder; "
                    "wait for it to finish or stop it, or choose another --out"
                ) from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is None:
            return
        with contextlib.suppress(OSError):
            self.path.unlink()  # while still holding it: see the class docstring
        os.close(self.fd)
        self.fd = None


@dataclass
class Claim:
    run_dir: Path
    replace: bool  # start_run must clear the previous run first (--overwrite)


@contextlib.contextmanager
def claim(run_dir: Path, stage: str, settings: dict[str, Any], overwrite: bool = False,
          reads: Iterable[str | Path | None] = ()) -> Iterator[Claim]:
    """Check that `stage` may write `run_dir` (reading only), then hold its lock for the `with` block.

    The check runs again under the lock, since another process may have finished a run there meanwhile.
    A folder this call created and nothing was written into is removed again on the way out.
    """
    run_dir = Path(run_dir)
    reads = list(reads)
    check_out(run_dir, stage, settings, overwrite, reads)
    created = not run_dir.exists()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise BadInput(f"--out {run_dir}: cannot create it ({e.strerror}); choose another --out") from None
    lock = RunLock(run_dir)
    try:
        lock.acquire()
    except BadInput:
        if created:
            with contextlib.suppress(OSError):
                run_dir.rmdir()
        raise
    try:
        yield Claim(run_dir, check_out(run_dir, stage, settings, overwrite, reads))
    finally:
        lock.release()
        if created:
            with contextlib.suppress(OSError):
                run_dir.rmdir()  # only if still empty


def clear_folder(run_dir: Path) -> None:
    """Empty a run folder the caller owns and has locked (the pipeline's stage folders), keeping the lock."""
    for p in Path(run_dir).iterdir():
        if p.name == LOCK_FILE:
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()
