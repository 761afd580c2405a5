"""The label stage against a fake OpenAI-compatible server: faults, cache, budget, batch, bad input."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from distill.cli import app
from distill.metrics import SCHEMA_VERSION, LabelMetrics, unknown_keys
from tests.helpers import write_texts_csv

runner = CliRunner()

TEXTS = [
    "The pasta was lovely and the staff kind.",
    "Cold soup, rude waiter.",
    "Best pizza in town!",
    "Best pizza in town!",  # duplicate: asked once
    "Terrible service, bland food.",
    "A wonderful anniversary dinner.",
]


def run_label(*args: str, env: dict | None = None):
    return runner.invoke(app, ["label", *args], env=env, catch_exceptions=False)


def read_rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "labels.jsonl").read_text().splitlines()]


@pytest.fixture
def reviews(tmp_path):
    return write_texts_csv(tmp_path / "reviews.csv", TEXTS)


def base_args(fake, out, *extra):
    return ["--labels", "positive,negative", "--teacher", "fake-model", "--base-url", fake.base_url, "--out", str(out), *extra]


def test_labels_every_row_in_order_and_asks_duplicates_once(fake_openai, reviews, tmp_path):
    out = tmp_path / "run"
    r = run_label(str(reviews), *base_args(fake_openai, out))
    assert r.exit_code == 0, r.output
    rows = read_rows(out)
    assert [x["text"] for x in rows] == TEXTS
    assert [x["label"] for x in rows] == ["positive", "negative", "positive", "positive", "negative", "positive"]
    assert all(abs(sum(x["probs"].values()) - 1) < 1e-9 for x in rows)
    m = json.loads((out / "metrics.json").read_text())
    assert m["rows"] == 6 and m["unique_texts"] == 5 and m["labeled"] == 6 and m["invalid"] == 0
    assert m["teacher_calls"] == 6  # 5 distinct texts + the calibration input
    assert m["schema_version"] == SCHEMA_VERSION and unknown_keys(m, LabelMetrics) == []
    assert fake_openai.texts.count("Best pizza in town!") == 1
    assert (out / "manifest.json").is_file() and (out / "config.json").is_file()
    assert "labels: positive 4" in r.output


def test_rerun_makes_zero_teacher_calls(fake_openai, reviews, tmp_path):
    out = tmp_path / "run"
    assert run_label(str(reviews), *base_args(fake_openai, out)).exit_code == 0
    before = len(fake_openai.requests)
    r = run_label(str(reviews), *base_args(fake_openai, out))
    assert r.exit_code == 0
    m = json.loads((out / "metrics.json").read_text())
    assert len(fake_openai.requests) == before
    assert m["teacher_calls"] == 0 and m["cached"] == 5 and m["labeled"] == 6


def test_faults_are_retried_in_the_run_and_nothing_is_lost(fake_openai, reviews, tmp_path):
    fake_openai.fail = {"Cold soup": ["429", "500"], "anniversary": ["hang"], "Terrible": ["malformed"], "pasta": ["junk"]}
    fake_openai.hang_seconds = 3
    out = tmp_path / "run"
    r = run_label(str(reviews), *base_args(fake_openai, out, "--timeout", "1", "--max-retries", "3"))
    assert r.exit_code == 0, r.output
    rows = {x["text"]: x for x in read_rows(out)}
    assert rows["Cold soup, rude waiter."]["label"] == "negative"  # 429 then 500, then answered
    assert rows["A wonderful anniversary dinner."]["label"] == "positive"  # timed out once, retried
    assert rows["Terrible service, bland food."]["label"] == "negative"  # a malformed body is asked again at once
    assert rows["The pasta was lovely and the staff kind."]["label"] == "positive"  # one junk answer, asked again
    m = json.loads((out / "metrics.json").read_text())
    assert m["invalid"] == 0 and m["errors"] == 0 and m["labeled"] == 6 and m["invalid_answers_seen"] == 1
    asked = len(fake_openai.requests)
    assert run_label(str(reviews), *base_args(fake_openai, out)).exit_code == 0
    assert len(fake_openai.requests) == asked  # everything final was cached; nothing bad was


def test_junk_answers_are_kept_apart_asked_again_next_run_and_capped(fake_openai, reviews, tmp_path):
    from distill.label.cache import INVALID_ATTEMPTS_CAP

    fake_openai.fail = {"pasta": ["junk"] * 20}
    out = tmp_path / "run"
    pasta = lambda: sum("pasta" in fake_openai.text_of(b) for b in fake_openai.requests)  # noqa: E731
    for run_no, asked in enumerate([2, INVALID_ATTEMPTS_CAP, INVALID_ATTEMPTS_CAP], 1):
        r = run_label(str(reviews), *base_args(fake_openai, out))
        assert r.exit_code == 0, r.output
        junk = {x["text"]: x for x in read_rows(out)}["The pasta was lovely and the staff kind."]
        assert junk["label"] is None and junk["source"] == "invalid" and junk["raw"] == " I think"
        assert pasta() == asked, run_no  # twice in the first run, once more in the next, then never again
        assert json.loads((out / "metrics.json").read_text())["invalid"] == 1
    fake_openai.fail = {}
    r = run_label(str(reviews), *base_args(fake_openai, out))
    assert {x["text"]: x for x in read_rows(out)}["The pasta was lovely and the staff kind."]["source"] == "invalid"


def test_server_without_logprobs_falls_back_to_json_and_says_so(reviews, tmp_path):
    from tests.fake_openai import FakeOpenAI

    with FakeOpenAI(logprobs=False) as fake:
        out = tmp_path / "run"
        r = run_label(str(reviews), *base_args(fake, out))
        assert r.exit_code == 0, r.output
        rows = read_rows(out)
        assert [x["label"] for x in rows][:2] == ["positive", "negative"]
        assert all(x["probs"] is None and x["source"] == "json" for x in rows)
        assert "response_format" in fake.requests[-1]
        m = json.loads((out / "metrics.json").read_text())
        assert m["probs_available"] is False and m["mode"] == "json"


def test_legacy_logprob_shape_on_completions(reviews, tmp_path):
    from tests.fake_openai import FakeOpenAI

    with FakeOpenAI(shape="legacy") as fake:
        out = tmp_path / "run"
        r = run_label(str(reviews), *base_args(fake, out, "--endpoint", "completions"))
        assert r.exit_code == 0, r.output
        assert "prompt" in fake.requests[-1]
        assert [x["label"] for x in read_rows(out)][:2] == ["positive", "negative"]


def test_a_llama_cpp_server_gets_the_shared_prefix_as_token_ids_and_the_same_cache_keys(reviews, tmp_path):
    """On a server with llama.cpp's /tokenize the prompt is [prefix token ids..., the rest as text]; the answers
    are those of the text prompts, keyed as before (a rerun against a plain server is served from the cache)."""
    from tests.fake_openai import FakeOpenAI

    cache = str(tmp_path / "cache.sqlite")
    with FakeOpenAI(shape="chat", tokenize=True) as fake:
        r = run_label(str(reviews), *base_args(fake, tmp_path / "a", "--endpoint", "completions", "--cache", cache))
        assert r.exit_code == 0, r.output
        prompt = fake.requests[-1]["prompt"]
        assert isinstance(prompt, list) and all(isinstance(t, int) for t in prompt[:-1]) and prompt[-1].startswith("Text: ")
    rows = read_rows(tmp_path / "a")
    assert [x["label"] for x in rows][:2] == ["positive", "negative"]
    assert json.loads((tmp_path / "a" / "metrics.json").read_text())["prefix_as_tokens"] is True
    with FakeOpenAI(shape="chat") as plain:  # no /tokenize: text prompts, and every answer already cached
        r = run_label(str(reviews), *base_args(plain, tmp_path / "b", "--endpoint", "completions", "--cache", cache,
                                               "--reuse-answers-from", fake.base_url))
        assert r.exit_code == 0, r.output
        m = json.loads((tmp_path / "b" / "metrics.json").read_text())
        assert m["teacher_calls"] == 0 and m["prefix_as_tokens"] is False
    assert read_rows(tmp_path / "b") == rows


def test_dry_run_prints_the_estimate_and_calls_nothing(fake_openai, reviews, tmp_path):
    r = run_label(str(reviews), "--labels", "positive,negative", "--teacher", "gpt-4o-mini", "--base-url",
                  fake_openai.base_url, "--out", str(tmp_path / "run"), "--dry-run")
    assert r.exit_code == 0, r.output
    assert "rows: 6" in r.output and "unique_texts: 5" in r.output and "est_cost_usd" in r.output
    assert "price table read on" in r.output
    assert fake_openai.requests == [] and not (tmp_path / "run" / "labels.jsonl").exists()


def test_max_cost_stops_cleanly_and_keeps_what_was_labeled(fake_openai, tmp_path):
    texts = [f"dish number {i} was fine" for i in range(40)]
    src = write_texts_csv(tmp_path / "many.csv", texts)
    out = tmp_path / "run"
    # ~100 prompt tokens per request at $1000/1M = ~$0.10 each; $1.00 buys about nine.
    args = base_args(fake_openai, out, "--price-in", "1000", "--price-out", "1000", "--max-cost", "1.0", "--concurrency", "2")
    r = run_label(str(src), *args)
    assert r.exit_code == 0, r.output
    m = json.loads((out / "metrics.json").read_text())
    assert m["stopped_by_budget"] and 0 < m["labeled"] < 40 and m["skipped"] == 40 - m["labeled"]
    assert m["cost_usd"] <= 1.0
    assert len(read_rows(out)) == 40 and "raise it and run the same command again" in r.output


def test_batch_api_submits_records_and_collects(fake_openai, reviews, tmp_path):
    out = tmp_path / "run"
    env = {"OPENAI_API_KEY": "sk-test-secret-123"}
    r = run_label(str(reviews), *base_args(fake_openai, out, "--batch", "--poll-seconds", "0.05", "--price-in", "1", "--price-out", "1"), env=env)
    assert r.exit_code == 0, r.output
    assert len(fake_openai.batches) == 1
    assert [x["label"] for x in read_rows(out)][:2] == ["positive", "negative"]
    assert not (out / "batch.json").exists()  # collected
    # A rerun pays for nothing: no new batch, no new request.
    r = run_label(str(reviews), *base_args(fake_openai, out, "--batch", "--poll-seconds", "0.05"), env=env)
    assert r.exit_code == 0 and len(fake_openai.batches) == 1
    for f in out.iterdir():  # the key never lands in a file
        assert "sk-test-secret-123" not in f.read_text(errors="ignore")


def test_batch_resumes_the_recorded_batch_after_a_crash(fake_openai, reviews, tmp_path):
    """A run killed after submitting finds batch.json and collects the same batch."""
    import asyncio

    from distill.label.batch import _submit
    from distill.label.cache import AnswerCache
    from distill.label.client import Endpoint, Teacher, build_request
    from distill.label.pricing import Price
    from distill.label.task import resolve_task
    from distill.config import LabelConfig

    out = tmp_path / "run"
    out.mkdir()
    cfg = LabelConfig(input=str(reviews), labels=["positive", "negative"], teacher="fake-model")
    task = resolve_task(cfg)
    teacher = Teacher(Endpoint(fake_openai.base_url, "fake-model", "chat", f"fake-model@{fake_openai.base_url}"), AnswerCache(tmp_path / "c.sqlite"), Price(0, 0, "t"))
    jobs = [(teacher.key(build_request(task, t, "chat", False)), build_request(task, t, "chat", False)) for t in dict.fromkeys(TEXTS)]

    async def submit_then_crash():
        await _submit(teacher, jobs, out / "batch.json")
        await teacher.close()

    asyncio.run(submit_then_crash())
    assert len(fake_openai.batches) == 1
    r = run_label(str(reviews), *base_args(fake_openai, out, "--batch", "--poll-seconds", "0.05"))
    assert r.exit_code == 0, r.output
    assert len(fake_openai.batches) == 1  # picked up, not paid twice
    assert all(x["label"] for x in read_rows(out))


# --- bad input: one line, exit code 2, no traceback -------------------------------------------------------


@pytest.mark.parametrize(
    "args, message",
    [
        (["missing.csv", "--labels", "a,b"], "no such file"),
        (["{reviews}", "--labels", "a,b", "--text-column", "body"], r"unknown column 'body'.*\['text'\]"),
        (["{empty}", "--labels", "a,b"], "no rows"),
        (["{reviews}", "--labels", "positive"], "at least two labels"),
        (["{reviews}", "--labels", "good,good"], "duplicate label"),
        (["{reviews}", "--labels", "very good,bad"], "not a single word"),
    ],
)
def test_bad_input_is_one_clear_line_and_exit_2(args, message, reviews, tmp_path, fake_openai):
    import re

    empty = tmp_path / "empty.csv"
    empty.write_text("text\n")
    args = [a.format(reviews=reviews, empty=empty) for a in args]
    r = runner.invoke(app, ["label", *args, "--teacher", "m", "--base-url", fake_openai.base_url, "--out", str(tmp_path / "o")])
    assert r.exit_code == 2, r.output
    assert re.search(message, r.output) and "Traceback" not in r.output


def test_no_api_key_for_openai_is_a_clear_error(reviews, tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    r = runner.invoke(app, ["label", str(reviews), "--labels", "a,b", "--teacher", "gpt-4o-mini", "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "set OPENAI_API_KEY" in r.output


def test_unreachable_server_names_the_url(reviews, tmp_path):
    url = "http://127.0.0.1:9/v1"
    r = runner.invoke(app, ["label", str(reviews), "--labels", "a,b", "--teacher", "m", "--base-url", url,
                            "--max-retries", "0", "--timeout", "2", "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and url in r.output and "Traceback" not in r.output


def test_labels_file_with_descriptions_goes_into_the_prompt(fake_openai, reviews, tmp_path):
    lf = tmp_path / "labels.yaml"
    lf.write_text("positive: the guest would come back\nnegative: the guest would not come back\n")
    out = tmp_path / "run"
    r = run_label(str(reviews), "--labels-file", str(lf), "--teacher", "m", "--base-url", fake_openai.base_url, "--out", str(out))
    assert r.exit_code == 0, r.output
    assert "negative: the guest would not come back" in fake_openai.requests[-1]["messages"][0]["content"]


def test_long_texts_are_truncated_and_counted(fake_openai, tmp_path):
    src = write_texts_csv(tmp_path / "long.csv", ["cold " * 3000, "fine"])
    out = tmp_path / "run"
    r = run_label(str(src), *base_args(fake_openai, out, "--max-text-chars", "500"))
    assert r.exit_code == 0, r.output
    m = json.loads((out / "metrics.json").read_text())
    assert m["truncated"] == 1 and read_rows(out)[0]["text"] == "cold " * 3000  # the output keeps the full text
    assert max(len(fake_openai.text_of(b)) for b in fake_openai.requests) < 520


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet", ".txt", "dir"])
def test_other_input_formats(fake_openai, tmp_path, suffix):
    import datasets

    ds = datasets.Dataset.from_dict({"review": TEXTS[:3]})
    src = tmp_path / f"in{suffix}"
    if suffix == ".jsonl":
        ds.to_json(str(src))
    elif suffix == ".parquet":
        ds.to_parquet(str(src))
    elif suffix == ".txt":
        src.write_text("\n".join(TEXTS[:3]) + "\n")
    else:
        ds.save_to_disk(str(src))
    col = [] if suffix == ".txt" else ["--text-column", "review"]
    r = run_label(str(src), *base_args(fake_openai, tmp_path / "run", *col))
    assert r.exit_code == 0, r.output
    assert [x["text"] for x in read_rows(tmp_path / "run")] == TEXTS[:3]


def test_a_file_that_is_not_a_cache_is_a_clear_error(fake_openai, reviews, tmp_path):
    bogus = tmp_path / "cache.sqlite"
    bogus.write_text("this is not sqlite, just text " * 100)
    r = run_label(str(reviews), *base_args(fake_openai, tmp_path / "run", "--cache", str(bogus)))
    assert r.exit_code == 2 and "is it a distill cache" in r.output


def test_malformed_labels_file_is_a_clear_error(fake_openai, reviews, tmp_path):
    lf = tmp_path / "labels.yaml"
    lf.write_text("positive: [unclosed\n")
    r = runner.invoke(app, ["label", str(reviews), "--labels-file", str(lf), "--teacher", "m", "--base-url", fake_openai.base_url, "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "not valid YAML" in r.output


def test_labels_from_a_file_are_recorded_in_order_for_the_next_stage(fake_openai, reviews, tmp_path):
    lf = tmp_path / "labels.txt"
    lf.write_text("negative: would not return\npositive: would return\n")
    out = tmp_path / "run"
    r = run_label(str(reviews), "--labels-file", str(lf), "--teacher", "m", "--base-url", fake_openai.base_url, "--out", str(out))
    assert r.exit_code == 0, r.output
    settings = json.loads((out / "config.json").read_text())["settings"]
    assert settings["labels"] == ["negative", "positive"]
    assert json.loads((out / "metrics.json").read_text())["labels"] == ["negative", "positive"]


def test_server_gone_after_a_cached_preflight_is_not_a_finished_run(fake_openai, reviews, tmp_path):
    """The calibration answer comes from the cache, every row fails: say so, exit 2, no manifest."""
    out = tmp_path / "run"
    assert run_label(str(reviews), *base_args(fake_openai, out, "--max-rows", "1")).exit_code == 0
    fake_openai.fail = {"": ["500"] * 100}
    r = run_label(str(reviews), *base_args(fake_openai, out, "--max-retries", "0"))
    assert r.exit_code == 2 and fake_openai.base_url in r.output and "every request" in r.output
    assert not (out / "manifest.json").exists()


def test_api_key_echoed_by_a_server_never_reaches_any_file_or_the_terminal(fake_openai, reviews, tmp_path, monkeypatch):
    key = "sk-live-abcdef123456"
    monkeypatch.setenv("OPENAI_API_KEY", key)
    fake_openai.fail["Cold soup"] = ["echo-auth"]  # its error message quotes "Bearer sk-live-..."
    out = tmp_path / "run"
    r = run_label(str(reviews), *base_args(fake_openai, out, "--max-retries", "0"))
    assert r.exit_code == 0, r.output
    m = json.loads((out / "metrics.json").read_text())
    assert m["errors"] == 1 and "Bearer ***" in m["last_error"]  # the failure is reported, the key is not
    assert key not in r.output
    for path in out.rglob("*"):
        assert not path.is_file() or key not in path.read_text(encoding="utf-8", errors="replace"), path


def test_scrub_and_redact_url_hide_secrets(tmp_path):
    from distill.label.client import Endpoint, Teacher
    from distill.label.cache import AnswerCache
    from distill.label.pricing import Price

    t = Teacher(Endpoint("http://x/v1", "m", "chat", "m", api_key="sk-live-abcdef"), AnswerCache(tmp_path / "c.sqlite"), Price(0, 0, "t"))
    assert "sk-live" not in t.scrub("401: invalid key sk-live-abcdef provided")
    from distill.label.client import redact_url

    assert redact_url("https://user:pw@host.example:8443/v1?api-key=secret") == "https://host.example:8443/v1"


def test_gold_texts_are_labeled_apart_and_the_teacher_is_scored_on_them(fake_openai, reviews, tmp_path):
    import csv

    gold = tmp_path / "gold.csv"
    with open(gold, "w", newline="", encoding="utf-8") as f:
        # The fake teacher calls anything with "slow" negative: the third row is its mistake.
        csv.writer(f).writerows([("text", "label"), ("Lovely terrace.", "positive"), ("Rude staff.", "negative"),
                                 ("Slow, but worth the wait.", "positive"), ("Bland and cold.", "negative")])
    out = tmp_path / "run"
    r = run_label(str(reviews), *base_args(fake_openai, out, "--gold", str(gold)))
    assert r.exit_code == 0, r.output
    assert "teacher on 4 gold texts: accuracy 75.0%" in r.output
    assert [x["text"] for x in read_rows(out)] == TEXTS  # gold texts never reach labels.jsonl
    g = [json.loads(line) for line in (out / "gold.jsonl").read_text().splitlines()]
    assert [(x["label"], x["true_label"]) for x in g] == [("positive", "positive"), ("negative", "negative"),
                                                         ("negative", "positive"), ("negative", "negative")]
    m = json.loads((out / "metrics.json").read_text())
    assert m["rows"] == 6 and m["teacher_gold_rows"] == 4 and m["teacher_gold_accuracy"] == 0.75
    assert abs(m["teacher_gold_macro_f1"] - (2 / 3 + 4 / 5) / 2) < 1e-9  # positive F1 2/3, negative 4/5


def test_gold_labels_outside_the_label_set_are_named(fake_openai, reviews, tmp_path):
    gold = tmp_path / "gold.csv"
    gold.write_text("text,label\nFine.,neutral\nGood.,positive\n")
    r = run_label(str(reviews), *base_args(fake_openai, tmp_path / "run", "--gold", str(gold)))
    assert r.exit_code == 2 and "['neutral'] are not in the label set" in r.output, r.output
    assert not (tmp_path / "run" / "manifest.json").exists()


def test_a_gold_file_without_a_label_column_says_which_column_it_needs(fake_openai, reviews, tmp_path):
    gold = tmp_path / "gold.csv"
    gold.write_text("text,stars\nFine.,positive\n")
    r = run_label(str(reviews), *base_args(fake_openai, tmp_path / "run", "--gold", str(gold)))
    assert r.exit_code == 2 and "no column 'label'; it has ['text', 'stars']: name its label column 'label'" in r.output, r.output
