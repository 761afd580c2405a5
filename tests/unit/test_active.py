"""`distill label --budget N`: rounds never pass the budget and the rest stays unlabeled (the resume after a
kill -9 mid-round: tests/integration/test_active_resume.py). The fake teacher answers by sentiment words."""

import json

import numpy as np
from typer.testing import CliRunner

from distill.audit.active import least_sure_diverse, round_sizes
from distill.cli import app
from distill.runs import read_jsonl
from tests.fake_openai import FakeOpenAI
from tests.helpers import label_args, pool_csv

runner = CliRunner()


def test_round_sizes_and_the_selection_rule():
    assert round_sizes(500, None, None) == (100, 50)
    assert round_sizes(30, None, None) == (20, 10)
    assert round_sizes(10, 40, 5) == (10, 5)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 4))
    labeled, targets = list(range(20)), [int(v > 0) for v in x[:20, 0]]
    picks = least_sure_diverse(x, labeled, targets, list(range(20, 60)), 5, 2, seed=0)
    assert len(picks) == len(set(picks)) == 5 and set(picks) <= set(range(20, 60))
    assert picks == least_sure_diverse(x, labeled, targets, list(range(20, 60)), 5, 2, seed=0)  # deterministic
    # the picks sit near the boundary (x0 = 0): least sure
    assert np.abs(x[picks, 0]).mean() < np.abs(x[20:60, 0]).mean()


def test_budget_is_never_exceeded_and_the_rest_is_kept_unlabeled(tmp_path):
    data = pool_csv(tmp_path / "pool.csv")
    out = tmp_path / "run"
    with FakeOpenAI() as fake:
        r = runner.invoke(app, label_args(data, fake, out, "--budget", "45", "--seed-rows", "20", "--round-rows", "10"))
        assert r.exit_code == 0, r.output
        asked = [t for t in fake.texts if t != "N/A"]
    assert len(asked) == len(set(asked)) == 45
    rows = read_jsonl(out / "labels.jsonl")
    assert len(rows) == 150 and sum(x["label"] is not None for x in rows) == 45
    assert sum(x["source"] == "unlabeled" for x in rows) == 105
    assert len(read_jsonl(out / "unlabeled.jsonl")) == 105
    m = json.loads((out / "metrics.json").read_text())
    assert m["budget"] == 45 and m["rounds"] == 4 and m["unlabeled"] == 105 and m["teacher_calls"] <= 45 + 1
    rounds = read_jsonl(out / "rounds.jsonl")[1:]
    assert [len(x["rows"]) for x in rounds] == [20, 10, 10, 5] and [x["strategy"] for x in rounds] == ["seed", "active", "active", "active"]
    # train leaves the unlabeled rows out without counting them as invalid answers
    from distill.train.data import read_label_run

    d = read_label_run(out)
    assert len(d.texts) == 45 and d.dropped_invalid == 0

    # the same command again (the same model at a new port: answers are keyed by URL, so say so): every
    # answer from the cache, the same rows
    first_url = fake.base_url
    with FakeOpenAI() as fake:
        r = runner.invoke(app, label_args(data, fake, out, "--budget", "45", "--seed-rows", "20", "--round-rows", "10",
                                          "--reuse-answers-from", first_url))
        assert r.exit_code == 0, r.output
        assert fake.texts == []
    assert [x["label"] for x in read_jsonl(out / "labels.jsonl")] == [x["label"] for x in rows]


def test_random_selection_and_a_money_cap(tmp_path):
    data = pool_csv(tmp_path / "pool.csv", 80)
    with FakeOpenAI() as fake:
        r = runner.invoke(app, label_args(data, fake, tmp_path / "random", "--budget", "30", "--selection", "random"))
        assert r.exit_code == 0, r.output
        assert len([t for t in fake.texts if t != "N/A"]) == 30
        # --active without a row budget: rounds until the money is spent (the fake's requests cost ~1e-4 USD each)
        r = runner.invoke(app, label_args(data, fake, tmp_path / "money", "--active", "--max-cost", "0.004",
                                          "--price-in", "1", "--price-out", "1", "--seed-rows", "20", "--round-rows", "10"))
        assert r.exit_code == 0, r.output
    m = json.loads((tmp_path / "money" / "metrics.json").read_text())
    assert m["stopped_by_budget"] and m["cost_usd"] <= 0.004 and 0 < m["labeled"] < 80
