"""Optional export outputs: the tokenizer-in-graph model (--with-tokenizer) and ORT-format files (--ort).

Both are checked against the plain model of the same export before they are kept (ParityError otherwise).

Tokenizer in the graph: onnxruntime-extensions turns the HF tokenizer into one custom op, which we join in
front of the classifier with onnx.compose.merge_models. That op takes ONE string per call (two strings come
out as one pair-encoded sequence), so the merged model's input is fixed to shape [1] and onnxruntime refuses
a batch outright; `Predictor` loops. The op does not truncate, so the graph cuts the ids at max_length itself
(first max_length-1 tokens + the closing special token, as HF truncation does) and says so in a `truncated`
output.
"""

from __future__ import annotations

import contextlib
import io
import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from distill.errors import BadInput, DistillError
from distill.logs import quiet_logger, quiet_onnxruntime
from distill.runtime import Predictor, extensions_library
from distill.export.checks import agreement, long_texts

if TYPE_CHECKING:
    import onnx

    from distill.config import ExportConfig
    from distill.export.train_run import TrainRun

WITH_TOKENIZER = "model.with_tokenizer.onnx"
ORT_CONFIG = "required_operators.config"
PARITY_TEXTS = 20


def parity_texts(train: "TrainRun") -> list[str]:
    """PARITY_TEXTS texts from the validation split, the last one long enough to be truncated."""
    texts = [r["text"] for r in train.val][: PARITY_TEXTS - 1]
    return texts + long_texts(texts, 1)


def wordpiece_twin(hf: Any) -> tuple[Any, dict[str, str]]:
    """(tokenizer, op attributes) that onnxruntime-extensions converts. MPNet's tokenizer is BERT's WordPiece with
    <s> </s> <pad> as its special tokens, which the converter does not list: hand it a BertTokenizer over the same
    vocabulary and name the special tokens as op attributes (the parity check below still compares every id)."""
    if not type(hf).__name__.startswith("MPNetTokenizer"):
        return hf, {}
    import tempfile

    from transformers import BertTokenizer

    special = {k: getattr(hf, k) for k in ("unk_token", "sep_token", "cls_token", "pad_token", "mask_token")}
    with tempfile.TemporaryDirectory() as tmp:
        vocab = Path(tmp) / "vocab.txt"
        vocab.write_text("".join(t + "\n" for t, _ in sorted(hf.get_vocab().items(), key=lambda kv: kv[1])), encoding="utf-8")
        lower = bool(getattr(hf.backend_tokenizer.normalizer, "lowercase", True))
        return BertTokenizer(str(vocab), do_lower_case=lower, **special), special


def tokenizer_graph(train: "TrainRun", input_names: list[str]) -> "onnx.ModelProto":
    """text [1] -> each of `input_names` as int64 [1, tokens] cut at max_length, plus `truncated` bool [1]."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper
    from onnxruntime_extensions import gen_processing_models
    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(train.model_dir)
    try:
        pre, _ = gen_processing_models(*wordpiece_twin(hf))
    except Exception as e:  # the converter raises assorted errors for tokenizers it does not know
        raise BadInput(
            f"--with-tokenizer: onnxruntime-extensions cannot build a graph for {type(hf).__name__} ({e}); "
            "export without --with-tokenizer and tokenize in the app with tokenizer.json"
        ) from None
    g = pre.graph
    outputs = {o.name: len(o.type.tensor_type.shape.dim) for o in g.output}
    if any(outputs.get(n) != 1 for n in input_names):
        raise BadInput(
            f"--with-tokenizer: the {type(hf).__name__} graph gives {outputs}, not the 1-D {input_names} the model "
            "takes; it works for WordPiece (BERT-style) tokenizers. Export without --with-tokenizer"
        )
    for node in g.node:
        if node.op_type == "BertTokenizer":
            # The converter writes strip_accents=0, but HF's BertNormalizer strips accents when it lowercases and
            # strip_accents is unset: "café" would get other ids than in training.
            norm = hf.backend_tokenizer.normalizer
            strip = getattr(norm, "strip_accents", None)
            strip = getattr(norm, "lowercase", False) if strip is None else strip
            for a in node.attribute:
                if a.name == "strip_accents":
                    a.i = int(bool(strip))
    g.input[0].type.tensor_type.shape.dim[0].dim_value = 1  # one string per call, enforced by onnxruntime
    raw = {n: f"tok_raw_{n}" for n in outputs}  # free the plain names for the classifier's inputs
    for node in g.node:
        node.input[:] = [raw.get(x, x) for x in node.input]
        node.output[:] = [raw.get(x, x) for x in node.output]
    consts = {"tok_zero": [0], "tok_one": [1], "tok_max": [train.max_length]}
    g.initializer.extend(numpy_helper.from_array(np.array(v, dtype=np.int64), k) for k, v in consts.items())
    nodes = [
        helper.make_node("Shape", [raw[input_names[0]]], ["tok_n"]),
        helper.make_node("Min", ["tok_n", "tok_max"], ["tok_keep"]),
        helper.make_node("Sub", ["tok_keep", "tok_one"], ["tok_head_end"]),
        helper.make_node("Sub", ["tok_n", "tok_one"], ["tok_last"]),
        helper.make_node("Greater", ["tok_n", "tok_max"], ["truncated"]),
    ]
    for name in input_names:  # ids[:min(n, max) - 1] + ids[n - 1:], then a batch axis of 1
        nodes += [
            helper.make_node("Slice", [raw[name], "tok_zero", "tok_head_end"], [f"tok_{name}_head"]),
            helper.make_node("Slice", [raw[name], "tok_last", "tok_n"], [f"tok_{name}_tail"]),
            helper.make_node("Concat", [f"tok_{name}_head", f"tok_{name}_tail"], [f"tok_{name}_cut"], axis=0),
            helper.make_node("Unsqueeze", [f"tok_{name}_cut", "tok_zero"], [f"tok_{name}"]),
        ]
    g.node.extend(nodes)
    del g.output[:]
    g.output.extend(helper.make_tensor_value_info(f"tok_{n}", TensorProto.INT64, [1, None]) for n in input_names)
    g.output.append(helper.make_tensor_value_info("truncated", TensorProto.BOOL, [1]))
    return pre


def tokenizer_in_graph(cfg: "ExportConfig", train: "TrainRun", out: Path, metrics: dict[str, Any]) -> None:
    """model.with_tokenizer.onnx: text [1] (string) -> probabilities [1, labels] and truncated [1]."""
    import onnx
    from onnx import TensorProto, helper

    base = "model.int8.onnx" if cfg.quantize == "int8" else "model.onnx"
    clf = onnx.load(str(out / base))
    names = [i.name for i in clf.graph.input]
    pre = tokenizer_graph(train, names)
    # merge_models wants one IR version and one default-domain opset on both sides.
    opset = next(o.version for o in clf.opset_import if o.domain in ("", "ai.onnx"))
    if opset < 13:
        raise BadInput(f"--with-tokenizer needs opset 13 or later (the model has {opset}); pass --opset 17")
    for o in pre.opset_import:
        if o.domain in ("", "ai.onnx"):
            o.version = opset
    # The extensions' graph declares domains it never uses (ai.onnx.nchwc, org.pytorch.aten, ...); a fused
    # classifier can declare one of them at another version, which merge_models refuses. Keep only what the
    # tokenizer's nodes use, and give a domain both sides use the higher version.
    used = {n.domain for n in pre.graph.node} | {"", "ai.onnx"}
    kept = [o for o in pre.opset_import if o.domain in used]
    del pre.opset_import[:]
    pre.opset_import.extend(kept)
    clf_versions = {o.domain: o for o in clf.opset_import}
    for o in pre.opset_import:
        twin = clf_versions.get(o.domain)
        if twin is not None and twin.version != o.version:
            o.version = twin.version = max(o.version, twin.version)
    pre.ir_version = clf.ir_version
    merged = onnx.compose.merge_models(pre, clf, io_map=[(f"tok_{n}", n) for n in names])
    g = merged.graph
    g.node.append(helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1))
    n_labels = len(train.labels)
    del g.output[:]
    g.output.extend(
        [
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [1, n_labels]),
            helper.make_tensor_value_info("truncated", TensorProto.BOOL, [1]),
        ]
    )
    onnx.checker.check_model(merged)
    onnx.save(merged, str(out / WITH_TOKENIZER))
    diff = agreement(Predictor(out, WITH_TOKENIZER), Predictor(out, base), parity_texts(train), cfg.atol, "--with-tokenizer")
    metrics["with_tokenizer"] = {
        "file": WITH_TOKENIZER,
        "classifier": base,
        "size_bytes": (out / WITH_TOKENIZER).stat().st_size,
        "texts_checked": PARITY_TEXTS,
        "max_abs_diff_probs": diff,
    }


def ort_format(cfg: "ExportConfig", train: "TrainRun", out: Path, metrics: dict[str, Any]) -> None:
    """.ort copies of the default (and tokenizer-in-graph) model + the operator config of a reduced build."""
    sources = ["model.int8.onnx" if cfg.quantize == "int8" else "model.onnx"]
    if (out / WITH_TOKENIZER).is_file():
        sources.append(WITH_TOKENIZER)
    src, dst = out / ".work" / "ort-in", out / ".work" / "ort-out"
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir(parents=True)
    for name in sources:
        shutil.copy2(out / name, src / name)
    # In process rather than `python -m onnxruntime.tools.convert_onnx_models_to_ort`: the tool's package
    # imports torch, which this process has already paid for (a subprocess spent 6-9 s on it).
    from onnxruntime.tools.convert_onnx_models_to_ort import OptimizationStyle, convert_onnx_models_to_ort

    platform = "arm" if cfg.target == "arm64" else "amd64"
    library = Path(extensions_library()) if WITH_TOKENIZER in sources else None
    log = io.StringIO()  # the tool prints its progress; keep it for the error message only
    # Its sessions warn that "Fixed" style bakes in platform optimizations; its own logger says each step.
    try:
        with quiet_onnxruntime(), quiet_logger("ort_format_model.utils", logging.WARNING), contextlib.redirect_stdout(log):
            convert_onnx_models_to_ort(src, dst, [OptimizationStyle.Fixed], library, platform)
    except Exception as e:  # the converter raises whatever onnxruntime raised
        raise DistillError(f"--ort: onnxruntime's ORT-format conversion failed: {e}") from None
    if not (dst / ORT_CONFIG).is_file():
        raise DistillError(f"--ort: the conversion wrote no {ORT_CONFIG}: {log.getvalue().strip()[-300:]}")
    shutil.move(str(dst / ORT_CONFIG), out / ORT_CONFIG)
    checked = {}
    for name in sources:
        ort_name = name.removesuffix(".onnx") + ".ort"
        shutil.move(str(dst / ort_name), out / ort_name)
        # Against the .onnx file with onnxruntime's default fusions, the ones the converter baked into the .ort
        # (SkipLayerNormalization too: its int8 numerics differ from Add + LayerNormalization by up to ~6e-4).
        reference = Predictor(out, name, all_fusions=True)
        checked[ort_name] = agreement(Predictor(out, ort_name), reference, parity_texts(train), cfg.atol, "--ort")
    metrics["ort"] = {
        "files": {name: (out / name).stat().st_size for name in checked},
        "operator_config": ORT_CONFIG,
        "target_platform": platform,
        "max_abs_diff_probs": checked,
    }
