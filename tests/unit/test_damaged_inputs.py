"""No traceback, ever: every command over a corpus of damaged inputs exits 2 with one line that names the file.

Issue 11, section 3. Each case damages one input the way files get damaged in the field (another encoding, a
page of garbage, a cut-short download) and runs the command a user would run on it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from distill.cli import app
from tests.helpers import write_texts_csv

runner = CliRunner()
LATIN1 = "Café crème, très bon\nUn service épouvantable\n".encode("latin-1")
LABELS = ["--labels", "positive,negative", "--teacher", "fake"]


def damage_page(path: Path) -> None:
    """Overwrite the second page of a SQLite file with garbage, as a bad disk or a partial copy would."""
    with open(path, "r+b") as f:
        f.seek(4096)
        f.write(os.urandom(4096))


@pytest.fixture
def corpus(tmp_path, fake_openai, tiny_train_run, tiny_export):
    """name -> (argv, the file the message must name)."""
    d = tmp_path
    files = {}
    for suffix, body in ((".txt", LATIN1), (".jsonl", b'{"text": "Caf\xe9"}\n'), (".csv", b"text\n" + LATIN1),
                         (".tsv", b"text\tid\n" + b"Caf\xe9\t1\n")):
        files[suffix] = d / f"latin1{suffix}"
        files[suffix].write_bytes(body)
    good = write_texts_csv(d / "good.csv", [f"text number {i} was {'cold' if i % 2 else 'lovely'}" for i in range(12)])
    cache = d / "cache.sqlite"
    r = runner.invoke(app, ["label", str(good), *LABELS, "--base-url", fake_openai.base_url, "--out", str(d / "lab"),
                            "--cache", str(cache)])
    assert r.exit_code == 0, r.output
    damaged_cache = d / "damaged.sqlite"
    shutil.copy(cache, damaged_cache)
    damage_page(damaged_cache)
    cut = Path(shutil.copytree(tiny_train_run, d / "cut-train"))
    weights = cut / "model" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    garbage_weights = Path(shutil.copytree(tiny_train_run, d / "garbage-train"))
    (garbage_weights / "model" / "model.safetensors").write_bytes(os.urandom(5000))
    labeled = d / "labeled-latin1.csv"
    labeled.write_bytes(b"text,label\n" + b"Caf\xe9,positive\nbad,negative\n" * 5)
    recipe = d / "recipe.yaml"
    recipe.write_bytes(b"name: demo\n# caf\xe9\nlabel:\n  input: x.csv\n")
    bad_gold = d / "gold.csv"
    bad_gold.write_bytes(b"text,label\nCaf\xe9,positive\n")
    bad_labels_file = d / "labels.txt"
    bad_labels_file.write_bytes(b"positive: tr\xe8s bien\nnegative: mauvais\n")
    url = ["--base-url", fake_openai.base_url]
    return {
        **{f"label {s}": (["label", str(f), *LABELS, *url, "--out", str(d / f"out{s}")], f) for s, f in files.items()},
        **{f"predict {s}": (["predict", str(tiny_export), "--input", str(f)], f) for s, f in files.items()},
        "label damaged cache": (["label", str(good), *LABELS, *url, "--out", str(d / "lab2"), "--cache", str(damaged_cache)], damaged_cache),
        "label latin-1 gold": (["label", str(good), *LABELS, *url, "--out", str(d / "lab3"), "--gold", str(bad_gold)], bad_gold),
        "label latin-1 labels file": (["label", str(good), "--labels-file", str(bad_labels_file), "--teacher", "fake", *url,
                                       "--out", str(d / "lab4")], bad_labels_file),
        "export truncated safetensors": (["export", str(cut), "--onnx", "--out", str(d / "ex1")], weights),
        "export garbage safetensors": (["export", str(garbage_weights), "--onnx", "--out", str(d / "ex2")], garbage_weights / "model"),
        "train latin-1 csv": (["train", str(labeled), "--out", str(d / "tr1")], labeled),
        "run latin-1 recipe": (["run", str(recipe)], recipe),
    }


def test_every_command_on_damaged_input_exits_2_with_one_line_naming_the_file(corpus):
    failures = []
    for name, (argv, named) in corpus.items():
        r = runner.invoke(app, argv)
        out = r.output  # stdout and stderr together
        lines = [ln for ln in out.splitlines() if ln.startswith("error:")]
        ok = (r.exit_code == 2 and "Traceback" not in out and isinstance(r.exception, SystemExit)
              and len(lines) == 1 and str(named) in lines[0])
        if not ok:
            failures.append(f"{name}: exit {r.exit_code}: {out.strip()[-300:]!r} {r.exception!r}")
    assert not failures, "\n".join(failures)
