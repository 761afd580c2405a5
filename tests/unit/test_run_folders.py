"""A finished run folder is never overwritten or wiped by accident, and one process writes it at a time.

Issue 11, section 1: every stage refuses a folder holding another stage's run, or its own with other settings,
unless --overwrite; nothing is touched before the input, the teacher and the settings are checked; a second
writer fails at once naming the PID that holds the folder; the lock dies with its process, even on SIGKILL.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from distill.cli import app
from distill.errors import BadInput
from distill.runs import LOCK_FILE, RunLock, claim, finish_run, start_run
from tests.helpers import write_texts_csv

runner = CliRunner()
TEXTS = ["the soup was cold", "lovely pasta", "rude waiter", "a wonderful evening", "bland and slow"]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def label_args(fake, data: Path, out: Path, *extra: str) -> list[str]:
    return ["label", str(data), "--labels", "positive,negative", "--teacher", "fake", "--base-url", fake.base_url,
            "--out", str(out), *extra]


@pytest.fixture
def label_run(fake_openai, tmp_path) -> Path:
    data = write_texts_csv(tmp_path / "in.csv", TEXTS)
    out = tmp_path / "label"
    r = runner.invoke(app, label_args(fake_openai, data, out))
    assert r.exit_code == 0, r.output
    return out


@pytest.fixture
def train_run(tiny_train_run, tmp_path) -> Path:
    return Path(shutil.copytree(tiny_train_run, tmp_path / "train"))


def test_export_into_its_own_train_run_is_refused_and_changes_nothing(train_run):
    before = snapshot(train_run)
    r = runner.invoke(app, ["export", str(train_run), "--onnx", "--out", str(train_run)])
    assert r.exit_code == 2 and str(train_run) in r.output and "another --out" in r.output
    assert snapshot(train_run) == before


def test_export_into_another_train_run_is_refused_unless_overwrite(train_run, tiny_train_run, tmp_path):
    other = Path(shutil.copytree(tiny_train_run, tmp_path / "other-train"))
    before = snapshot(other)
    r = runner.invoke(app, ["export", str(train_run), "--onnx", "--out", str(other)])
    assert r.exit_code == 2 and "holds a finished train run" in r.output and "--overwrite" in r.output
    assert snapshot(other) == before


def test_label_into_a_train_run_is_refused(fake_openai, train_run, tmp_path):
    data = write_texts_csv(tmp_path / "in.csv", TEXTS)
    before = snapshot(train_run)
    r = runner.invoke(app, label_args(fake_openai, data, train_run))
    assert r.exit_code == 2 and "holds a finished train run" in r.output and "--overwrite" in r.output
    assert snapshot(train_run) == before and fake_openai.requests == []


def test_overwrite_replaces_the_old_run_and_its_files(fake_openai, train_run, tmp_path):
    data = write_texts_csv(tmp_path / "in.csv", TEXTS)
    (train_run / "notes.txt").write_text("mine")  # not the old run's: stays
    r = runner.invoke(app, label_args(fake_openai, data, train_run, "--overwrite"))
    assert r.exit_code == 0, r.output
    manifest = json.loads((train_run / "manifest.json").read_text())
    assert manifest["stage"] == "label" and not (train_run / "model").exists() and not (train_run / "val.jsonl").exists()
    assert (train_run / "notes.txt").read_text() == "mine"


def test_same_stage_other_settings_is_refused_same_settings_reruns(fake_openai, label_run, tmp_path):
    data = tmp_path / "in.csv"
    before = snapshot(label_run)
    r = runner.invoke(app, label_args(fake_openai, data, label_run, "--instructions", "Say the sentiment."))
    assert r.exit_code == 2 and "other settings (instructions)" in r.output
    assert snapshot(label_run) == before
    # how a run proceeds is not what it makes: concurrency, a budget, more rows
    r = runner.invoke(app, label_args(fake_openai, data, label_run, "--concurrency", "2"))
    assert r.exit_code == 0, r.output


@pytest.mark.parametrize("case", ["no API key", "unreadable cache"])
def test_a_label_command_that_fails_before_working_leaves_a_finished_run_alone(fake_openai, label_run, tmp_path, monkeypatch, case):
    data = tmp_path / "in.csv"
    before = snapshot(label_run)
    if case == "no API key":  # the same settings, against OpenAI itself, without a key
        monkeypatch.delenv("OPENAI_API_KEY", raising=False)
        settings = json.loads((label_run / "config.json").read_text())["settings"]
        args = ["label", str(data), "--labels", "positive,negative", "--teacher", "fake", "--out", str(label_run)]
        assert settings["base_url"] == fake_openai.base_url
        r = runner.invoke(app, args, env={"OPENAI_BASE_URL": "https://api.openai.com/v1"})
    else:
        bad = tmp_path / "bad.sqlite"
        bad.write_bytes(b"not a database " * 200)
        r = runner.invoke(app, label_args(fake_openai, data, label_run, "--cache", str(bad)))
    assert r.exit_code == 2, r.output
    assert snapshot(label_run) == before


HOLDER = textwrap.dedent("""
    import sys, time
    from distill.runs import RunLock
    RunLock(sys.argv[1]).acquire()
    print("locked", flush=True)
    time.sleep(60)
""")


def hold_lock(folder: Path) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "locked"
    return p


def test_a_second_writer_fails_at_once_naming_the_pid_and_sigkill_frees_the_folder(fake_openai, label_run, tmp_path):
    data = tmp_path / "in.csv"
    holder = hold_lock(label_run)
    try:
        before = snapshot(label_run)
        r = runner.invoke(app, label_args(fake_openai, data, label_run))
        assert r.exit_code == 2 and f"PID {holder.pid}" in r.output and str(label_run) in r.output
        assert snapshot(label_run) == before
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    r = runner.invoke(app, label_args(fake_openai, data, label_run))  # the kernel dropped the lock with the process
    assert r.exit_code == 0, r.output
    assert not (label_run / LOCK_FILE).exists()
    assert LOCK_FILE not in json.loads((label_run / "manifest.json").read_text())["files"]


def test_claim_checks_again_under_the_lock_and_removes_a_folder_it_created_for_nothing(tmp_path):
    out = tmp_path / "new"
    with pytest.raises(RuntimeError):
        with claim(out, "label", {"labels": ["a", "b"]}):
            assert (out / LOCK_FILE).is_file()
            with pytest.raises(BadInput, match="another distill process"):
                RunLock(out).acquire()
            raise RuntimeError("the stage failed before writing anything")
    assert not out.exists()


def test_out_that_is_a_file_or_cannot_be_created(fake_openai, tmp_path):
    data = write_texts_csv(tmp_path / "in.csv", TEXTS)
    a_file = tmp_path / "afile"
    a_file.write_text("x")
    r = runner.invoke(app, label_args(fake_openai, data, a_file))
    assert r.exit_code == 2 and "is a file, not a folder" in r.output and str(a_file) in r.output
    for bad in (a_file / "sub", Path("/proc/distill-out")):
        r = runner.invoke(app, label_args(fake_openai, data, bad))
        assert r.exit_code == 2 and "cannot create it" in r.output and str(bad) in r.output, r.output
    assert fake_openai.requests == []


def test_a_folder_of_other_files_is_not_a_run_folder(fake_openai, tmp_path):
    data = write_texts_csv(tmp_path / "in.csv", TEXTS)
    r = runner.invoke(app, label_args(fake_openai, data, tmp_path))  # tmp_path holds in.csv
    assert r.exit_code == 2 and "not a distill run (in.csv)" in r.output


def test_run_refuses_a_foreign_stage_folder_and_a_second_run_of_the_recipe(tmp_path, monkeypatch):
    import yaml

    from distill.run import chain

    data = write_texts_csv(tmp_path / "in.csv", TEXTS)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"name": "demo", "artifacts": str(tmp_path / "artifacts"),
                                      "label": {"input": str(data), "labels": ["negative", "positive"]}}))
    calls = []
    monkeypatch.setattr(chain, "stage_function", lambda stage: lambda cfg, out, **kw: calls.append(stage) or {})
    # someone's own finished label run where the recipe's label folder goes
    foreign = tmp_path / "artifacts" / "demo" / "label"
    start_run(foreign, "label", {"labels": ["x", "y"]})
    finish_run(foreign, "label", {"labels": ["x", "y"]}, {}, "# mine\n")
    before = snapshot(foreign)
    r = runner.invoke(app, ["run", str(recipe)])
    assert r.exit_code == 2 and "holds a finished label run" in r.output and calls == []
    assert snapshot(foreign) == before
    # a second `distill run` of the same recipe while one runs
    root = tmp_path / "artifacts" / "demo"
    holder = hold_lock(root)
    try:
        r = runner.invoke(app, ["run", str(recipe), "--overwrite"])
        assert r.exit_code == 2 and f"PID {holder.pid}" in r.output
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
