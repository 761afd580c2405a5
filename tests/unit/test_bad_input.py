"""Bad input is refused, not coerced or guessed; secrets stay out of files; the smaller cases of issue 11.

Sections 4, 5 and 6 of issue 11.
"""

from __future__ import annotations

import json
import time

import pytest
from typer.testing import CliRunner

from distill.cli import app
from distill.secrets import redact, redact_argv
from tests.helpers import write_texts_csv

runner = CliRunner()
LABELS = ["--labels", "positive,negative", "--teacher", "fake"]


@pytest.mark.parametrize("argv", [
    ["label", "inputs/nope.csv", *LABELS, "--base-url", "http://127.0.0.1:9/v1", "--out", "OUT"],
    ["label", "./nope", *LABELS, "--base-url", "http://127.0.0.1:9/v1", "--out", "OUT"],
    ["train", "runs/nope", "--out", "OUT"],
])
def test_a_path_that_does_not_exist_is_never_looked_up_on_the_hub(argv, tmp_path, monkeypatch):
    import datasets

    def no_hub(*a, **k):
        raise AssertionError("looked up on the hub")

    monkeypatch.setattr(datasets, "load_dataset", no_hub)
    t = time.perf_counter()
    r = runner.invoke(app, [str(tmp_path / "out") if a == "OUT" else a for a in argv])
    assert r.exit_code == 2 and "no such file or folder" in r.output, r.output
    assert time.perf_counter() - t < 10


def test_rows_without_a_usable_text_are_kept_in_order_counted_and_never_sent(fake_openai, tmp_path):
    data = tmp_path / "in.jsonl"
    data.write_text('{"text": "the soup was cold"}\n{"text": null}\n{"text": {"a": 1}}\n{"text": "   "}\n'
                    '{"text": "lovely"}\n{"other": 1}\n{"text": 7}\n')
    out = tmp_path / "run"
    r = runner.invoke(app, ["label", str(data), *LABELS, "--base-url", fake_openai.base_url, "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert sorted({fake_openai.text_of(b) for b in fake_openai.requests}) == ["N/A", "lovely", "the soup was cold"]
    rows = [json.loads(x) for x in (out / "labels.jsonl").read_text().splitlines()]
    assert [x["row"] for x in rows] == list(range(7))
    assert [x["label"] for x in rows] == ["negative", None, None, None, "positive", None, None]
    assert [x["source"] for x in rows][1:4] == ["no_text"] * 3
    m = json.loads((out / "metrics.json").read_text())
    assert m["skipped_rows"] == {"missing or null": 2, "not a string (dict)": 1, "empty": 1, "not a string (int)": 1}
    assert m["no_text"] == 5 and m["labeled"] == 2
    assert "rows without a usable text" in r.output


def test_labels_where_one_starts_another_are_refused(fake_openai, tmp_path):
    data = write_texts_csv(tmp_path / "in.csv", ["a", "b"])
    r = runner.invoke(app, ["label", str(data), "--labels", "pos,positive", "--teacher", "fake",
                            "--base-url", fake_openai.base_url, "--out", str(tmp_path / "run")])
    assert r.exit_code == 2 and "'pos' and 'positive'" in r.output and "rename one" in r.output
    assert fake_openai.requests == []


def test_max_cost_zero_never_pays_a_single_call(fake_openai, tmp_path):
    data = write_texts_csv(tmp_path / "in.csv", ["the soup was cold", "lovely"])
    r = runner.invoke(app, ["label", str(data), *LABELS, "--base-url", fake_openai.base_url, "--out", str(tmp_path / "run"),
                            "--max-cost", "0", "--price-in", "1", "--price-out", "1"])
    assert r.exit_code == 2 and "--max-cost 0" in r.output
    assert fake_openai.requests == [] and not (tmp_path / "run").exists()


SECRETS = ("sk-urlkey0123456", "sk-querykey98765", "sk-envkey55555555", "sk-headerkey4444")


def test_keys_in_the_url_the_environment_and_a_header_option_are_redacted(fake_openai, tmp_path, monkeypatch):
    env = {"OPENAI_API_KEY": SECRETS[2]}
    argv = ["distill", "label", "x.csv", "--base-url", f"https://user:{SECRETS[0]}@api.example.com/v1?api_key={SECRETS[1]}",
            "--header", f"Authorization: Bearer {SECRETS[3]}", f"--note={SECRETS[2]}"]
    cleaned = " ".join(redact_argv(argv, env))
    assert not any(s in cleaned for s in SECRETS) and "https://api.example.com/v1" in cleaned
    line = f"GET https://u:{SECRETS[0]}@h/v1?key={SECRETS[1]} Authorization: Bearer {SECRETS[3]} key={SECRETS[2]}"
    assert not any(s in redact(line, env) for s in SECRETS)
    # end to end: the command line recorded in config.json and the terminal
    monkeypatch.setenv("OPENAI_API_KEY", SECRETS[2])
    monkeypatch.setattr("sys.argv", ["distill", "label", "--base-url", fake_openai.base_url.replace("http://", f"http://u:{SECRETS[0]}@"),
                                     "--reuse-answers-from", f"http://127.0.0.1:1/v1?api_key={SECRETS[1]}"])
    data = write_texts_csv(tmp_path / "in.csv", ["the soup was cold", "lovely"])
    out = tmp_path / "run"
    r = runner.invoke(app, ["label", str(data), *LABELS, "--base-url", fake_openai.base_url.replace("http://", f"http://u:{SECRETS[0]}@"),
                            "--reuse-answers-from", f"http://127.0.0.1:1/v1?api_key={SECRETS[1]}", "--out", str(out)])
    assert r.exit_code == 0, r.output
    written = "".join(p.read_text() for p in out.iterdir() if p.is_file()) + r.output
    assert not any(s in written for s in SECRETS)
    assert json.loads((out / "config.json").read_text())["command"][3].startswith("http://127.0.0.1:")


def test_ctrl_c_in_train_names_the_real_resume_command(monkeypatch, tmp_path):
    import distill.train as package

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(package, "train", interrupted)
    r = runner.invoke(app, ["train", str(tmp_path), "--out", str(tmp_path / "out")])
    assert r.exit_code == 130 and "add --resume" in r.output and "starts over" in r.output


def test_a_student_folder_that_is_not_a_model_is_one_short_line(tmp_path):
    from distill.errors import BadInput
    from distill.train.model import load_student

    for folder, config in (("empty", None), ("odd", {"hidden_size": 8})):
        d = tmp_path / folder
        d.mkdir()
        if config:
            (d / "config.json").write_text(json.dumps(config))
        with pytest.raises(BadInput) as e:
            load_student(str(d), ["a", "b"])
        assert len(str(e.value)) < 400 and "--student minilm" in str(e.value)


def test_predict_reads_tsv_and_refuses_rows_with_extra_columns(tiny_export, tmp_path):
    tsv = tmp_path / "in.tsv"
    tsv.write_text("id\ttext\n1\tlovely food\n2\tcold soup\n")
    r = runner.invoke(app, ["predict", str(tiny_export), "--input", str(tsv)])
    assert r.exit_code == 0, r.output
    assert [json.loads(x)["text"] for x in r.output.splitlines() if x.startswith("{")] == ["lovely food", "cold soup"]
    bad = tmp_path / "in.csv"
    bad.write_text("text\nlovely food\ncold soup, and a rude waiter\n")
    r = runner.invoke(app, ["predict", str(tiny_export), "--input", str(bad)])
    assert r.exit_code == 2 and f"{bad}:3: 2 fields but the header has 1" in r.output


def test_a_guessed_text_column_is_named(fake_openai, tmp_path):
    data = tmp_path / "in.csv"
    data.write_text("review,stars\nthe soup was cold,1\nlovely,5\n")
    r = runner.invoke(app, ["label", str(data), *LABELS, "--base-url", fake_openai.base_url, "--out", str(tmp_path / "run")])
    assert r.exit_code == 0, r.output
    assert "using 'review', the only text column" in r.output
