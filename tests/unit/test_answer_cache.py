"""The answer cache keeps only good answers, under the right key (issue 11, section 2)."""

from __future__ import annotations

import json
import sqlite3

from typer.testing import CliRunner

from distill.cli import app
from tests.fake_openai import FakeOpenAI
from tests.helpers import write_texts_csv

runner = CliRunner()
TEXTS = [f"review {i}: the food was {'cold' if i % 2 else 'lovely'}" for i in range(60)]


def args(data, fake_or_url, out, *extra):
    url = fake_or_url if isinstance(fake_or_url, str) else fake_or_url.base_url
    return ["label", str(data), "--labels", "positive,negative", "--teacher", "fake", "--base-url", url, "--out", str(out), *extra]


def metrics(out):
    return json.loads((out / "metrics.json").read_text())


def test_one_malformed_probe_decides_nothing_and_is_not_kept(fake_openai, tmp_path):
    data = write_texts_csv(tmp_path / "in.csv", TEXTS)
    fake_openai.fail = {"N/A": ["malformed"]}
    r = runner.invoke(app, args(data, fake_openai, tmp_path / "run"))
    assert r.exit_code == 0, r.output
    m = metrics(tmp_path / "run")
    assert m["mode"] == "logprobs" and m["probs_available"] and m["invalid"] == 0 and m["labeled"] == 60
    assert "WARNING" not in r.output


def test_no_logprobs_needs_several_probes_to_agree_and_is_said_loudly(tmp_path):
    data = write_texts_csv(tmp_path / "in.csv", TEXTS)
    with FakeOpenAI(logprobs=False) as fake:
        r = runner.invoke(app, args(data, fake, tmp_path / "run"))
        assert r.exit_code == 0, r.output
        probes = [b for b in fake.requests if fake.text_of(b) == "N/A"]
    m = metrics(tmp_path / "run")
    assert len(probes) == 2 and m["mode"] == "json" and "no log-probabilities on 2 of 2 probes" in m["mode_note"]
    assert "WARNING: " in r.output and "constrained JSON output" in r.output
    assert "**Warning: the teacher at" in (tmp_path / "run" / "README.md").read_text()
    from distill.run.chain import result_line

    assert "WARNING: no log-probabilities" in result_line("label", m)
    # the probe's reply without logprobs was not cached: a healthy server later gets logprobs mode back
    with FakeOpenAI() as fake:
        r = runner.invoke(app, args(data, fake, tmp_path / "run2", "--reuse-answers-from", json.loads(
            (tmp_path / "run" / "config.json").read_text())["settings"]["base_url"]))
        assert r.exit_code == 0, r.output
    assert metrics(tmp_path / "run2")["mode"] == "logprobs"


def test_a_fault_on_every_ninth_request_still_labels_every_row(fake_openai, tmp_path):
    texts = [f"review {i}: {'cold' if i % 2 else 'fine'} food" for i in range(300)]
    data = write_texts_csv(tmp_path / "in.csv", texts)
    faults = ["429", "500", "malformed", "nolp"]
    fake_openai.fail = {f"review {i}:": [faults[(i // 9) % 4]] for i in range(0, 300, 9)}
    r = runner.invoke(app, args(data, fake_openai, tmp_path / "run", "--max-retries", "2"))
    assert r.exit_code == 0, r.output
    m = metrics(tmp_path / "run")
    assert m["labeled"] == 300 and m["invalid"] == 0 and m["errors"] == 0
    rows = [json.loads(x) for x in (tmp_path / "run" / "labels.jsonl").read_text().splitlines()]
    hard = [x for x in rows if x["source"] == "text"]
    assert len(hard) == m["hard_labels"] == 8 and all(x["probs"] is None and x["label"] for x in hard)


def test_the_key_holds_the_base_url_and_reuse_is_the_users_word(fake_openai, tmp_path):
    data = write_texts_csv(tmp_path / "in.csv", TEXTS[:12])
    assert runner.invoke(app, args(data, fake_openai, tmp_path / "a")).exit_code == 0
    # another server under the same --teacher name is not served from the first one's answers
    r = runner.invoke(app, args(data, "http://127.0.0.1:9/v1", tmp_path / "b"))
    assert r.exit_code == 2 and "cannot reach the teacher at http://127.0.0.1:9/v1" in r.output
    # the same model behind a new URL, when the user says so: every answer reused, no call
    with FakeOpenAI() as moved:
        r = runner.invoke(app, args(data, moved, tmp_path / "c", "--reuse-answers-from", fake_openai.base_url))
        assert r.exit_code == 0, r.output
        assert moved.requests == []
    assert metrics(tmp_path / "c")["cached"] == 12


def test_answers_an_older_version_cached_as_good_are_checked_again(fake_openai, tmp_path):
    from distill.label.cache import AnswerCache

    data = write_texts_csv(tmp_path / "in.csv", TEXTS[:12])
    cache = tmp_path / "cache.sqlite"
    assert runner.invoke(app, args(data, fake_openai, tmp_path / "a", "--cache", str(cache))).exit_code == 0
    db = sqlite3.connect(cache)
    (key, answer), = db.execute("SELECT key, answer FROM answers WHERE answer LIKE '%review 3%' OR rowid = 5").fetchall()[:1]
    junk = {**json.loads(answer), "top": [[" I", -0.1]], "text": " I"}
    db.execute("UPDATE answers SET answer = ? WHERE key = ?", (json.dumps(junk), key))
    db.commit()
    db.close()
    before = len(fake_openai.requests)
    r = runner.invoke(app, args(data, fake_openai, tmp_path / "a", "--cache", str(cache)))
    assert r.exit_code == 0, r.output
    assert len(fake_openai.requests) == before + 1 and metrics(tmp_path / "a")["invalid"] == 0
    c = AnswerCache(cache)
    assert c.invalid_attempts([key])[key][0] == 1 and c.get(key)["top"] != junk["top"]
    c.close()


def test_a_junk_answer_from_the_batch_api_is_kept_apart_and_asked_again(fake_openai, tmp_path):
    data = write_texts_csv(tmp_path / "in.csv", TEXTS[:12])
    fake_openai.fail = {"review 3:": ["junk"]}
    out = tmp_path / "run"
    r = runner.invoke(app, args(data, fake_openai, out, "--batch", "--poll-seconds", "0.05"))
    assert r.exit_code == 0, r.output
    row = [json.loads(x) for x in (out / "labels.jsonl").read_text().splitlines()][3]
    assert row["label"] is None and row["source"] == "invalid" and row["raw"] == " I think"
    r = runner.invoke(app, args(data, fake_openai, out, "--batch", "--poll-seconds", "0.05"))
    assert r.exit_code == 0, r.output
    assert [json.loads(x) for x in (out / "labels.jsonl").read_text().splitlines()][3]["label"] == "negative"
