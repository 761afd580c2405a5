"""The export stage: a finished train run -> one verified, quantized ONNX folder that an app ships.

    distill export artifacts/x/train --onnx --out artifacts/x/export [--quantize int8|none]
        [--target avx2|avx512|arm64] [--with-tokenizer] [--ort]

Steps: optimum-onnx export (dynamic batch and sequence axes) -> ONNX Runtime's transformer fusions -> int8
dynamic quantization of each graph in each same-size recipe (fp32 kept beside it), the fastest here kept (fusions
only when clearly faster) -> verification (checks.py: parity with PyTorch, int8 accuracy, timings, sizes) -> optional
tokenizer-in-graph model and ORT-format files (extras.py) -> the README card for app developers.
A verification failure is an error: the folder then has no manifest and `distill predict` refuses it.
"""

from __future__ import annotations

import shutil
import sys
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from distill.config import ExportConfig
from distill.errors import BadInput, DistillError
from distill.export.first_token import slice_first_token, slice_first_token_file
from distill.export.large import needs_external, place
from distill.export.quantization import RECIPES, SPEED_RECIPES, quantize
from distill.export.train_run import TrainRun, load_train_run
from distill.logs import quiet_transformers
from distill.metrics import SCHEMA_VERSION, ExportMetrics
from distill.runs import METRICS_JSON, finish_run, start_run, write_json
from distill.runtime import LABELS_FILE

# What a tokenizer may be made of; whichever of these the model folder has travels with the model.
TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
    "vocab.txt", "vocab.json", "merges.txt", "spiece.model", "sentencepiece.bpe.model", "spm.model",
)  # fmt: skip
# The optimized graph must beat the plain one by this factor (geometric mean of batch 1 and batch 32) to be
# kept: timings on a shared machine wobble by a few percent, and the plain graph is the more portable file.
OPTIMIZE_MARGIN = 0.95


def check_architecture(train: TrainRun) -> None:
    """Refuse, by name, an architecture optimum-onnx cannot export for text classification."""
    import optimum.exporters.onnx.model_configs  # noqa: F401  (registers the configs the TasksManager lists)
    from optimum.exporters.tasks import TasksManager

    supported = TasksManager.get_supported_model_type_for_task("text-classification", exporter="onnx")
    if train.model_type not in supported and train.model_type.replace("_", "-") not in supported:
        raise BadInput(
            f"{train.architecture} (model_type {train.model_type!r}) cannot be exported to ONNX for text "
            f"classification; supported model types: {', '.join(sorted(supported))}"
        )


def export_onnx(model_dir: Path, work: Path, opset: int | None) -> Path:
    """optimum-onnx export with dynamic batch and sequence axes; our own checks replace its validation."""
    from optimum.exporters.onnx import main_export

    with quiet_transformers(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's warnings are about constants it correctly folds
        main_export(
            str(model_dir), output=work, task="text-classification", opset=opset, do_validation=False,
            local_files_only=True, library_name="transformers",
        )  # fmt: skip
    return work / "model.onnx"


def optimize_graph(src: Path, dst: Path, model_type: str) -> tuple[str | None, bool]:
    """ONNX Runtime's offline transformer fusions, then the first-token rewrite (first_token.py: after the fusions,
    whose attention pattern a Slice would break); returns why the fusions were not applied (or None) and whether
    the rewrite was."""
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model
    from optimum.onnxruntime.utils import ORTConfigManager

    if needs_external(src):
        return "the model is over 2 GB (external data); fusions are not tried", False
    try:
        ort_type = ORTConfigManager.get_model_ort_type(model_type)
    except KeyError:
        return f"onnxruntime has no transformer fusions for {model_type!r}", False
    options = FusionOptions(ort_type)
    # Residual Add + LayerNormalization stay two nodes instead of one SkipLayerNormalization: onnxruntime's CPU
    # kernel for the fused node is the slow one. MiniLM int8 at batch 1 (24-token reviews, Intel Xeon AVX-512):
    # 1.37 -> 1.20 ms on 2 threads, 1.79 -> 1.36 ms on 1; the profile gave SkipLayerNormalization 50 us a call
    # against 10 us for LayerNormalization plus ~3 us for the Add (the MatMul's bias moves into the MatMul).
    options.enable_skip_layer_norm = options.enable_bias_skip_layer_norm = False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = optimize_model(str(src), model_type=ort_type, num_heads=0, hidden_size=0,  # 0: read from the graph
                               optimization_options=options)
    if not any(model.get_fused_operator_statistics().values()):
        return "no subgraph matched a fusion pattern", False
    sliced = slice_first_token(model.model)  # before saving: one write of the graph, not two
    model.save_model_to_file(str(dst))
    return None, sliced


def write_tokenizer(train: TrainRun, out: Path) -> int:
    """Copy the tokenizer files, with max_length truncation and pad-to-longest baked into tokenizer.json."""
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    for name in TOKENIZER_FILES:
        if (train.model_dir / name).is_file():
            shutil.copy2(train.model_dir / name, out / name)
    pad_id = AutoTokenizer.from_pretrained(train.model_dir).pad_token_id or 0
    tok = Tokenizer.from_file(str(out / "tokenizer.json"))
    tok.enable_truncation(train.max_length)
    tok.enable_padding(pad_id=pad_id, pad_token=tok.id_to_token(pad_id) or "[PAD]")
    tok.save(str(out / "tokenizer.json"))
    return pad_id


def tensor_specs(model_path: Path) -> tuple[dict[str, dict], dict[str, dict]]:
    """{name: {dtype, shape}} for the graph's inputs and outputs, as the README and labels.json state them."""
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph

    def spec(v: Any) -> dict:
        t = v.type.tensor_type
        dims = [d.dim_param or d.dim_value for d in t.shape.dim]
        return {"dtype": onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name, "shape": dims}

    return {v.name: spec(v) for v in graph.input}, {v.name: spec(v) for v in graph.output}


def build_models(cfg: ExportConfig, train: TrainRun, out: Path, work: Path, pad_id: int) -> dict[str, Any]:
    """model.onnx (+ model.int8.onnx) in `out`: the graph (plain or fused) and the int8 recipe that run fastest
    here, timed on the validation texts; returns what was decided. The int8 recipes timed are those of the same
    size (quantization.SPEED_RECIPES); the verification tries them fastest first and falls back to the others
    only when accuracy asks for it."""
    from distill.export.checks import time_graphs
    from distill.export.large import needs_external
    from distill.runtime import load_tokenizer

    plain = export_onnx(train.model_dir, work / "plain", cfg.opset)
    graphs = {"plain": plain}
    why_not, first_token = "disabled (--no-optimize)", {}
    if cfg.optimize:
        why_not, first_token["optimized"] = optimize_graph(plain, work / "optimized.onnx", train.model_type)
        if why_not is None:
            graphs["optimized"] = work / "optimized.onnx"
    # The last layer for the [CLS] position only (first_token.py): exact, so every graph gets it where it applies.
    first_token["plain"] = not needs_external(plain) and slice_first_token_file(plain)
    # Candidates: (graph, recipe) -> file; with int8, every graph in every same-size recipe (a model over 2 GB
    # only in the first: quantizing one twice costs minutes, and it is not fused anyway).
    recipes = (SPEED_RECIPES if not needs_external(plain) else SPEED_RECIPES[:1]) if cfg.quantize == "int8" else (None,)
    files: dict[tuple[str, str | None], Path] = {}
    for g, path in graphs.items():
        for r in recipes:
            files[g, r] = path if r is None else work / f"{g}.{r}.int8.onnx"
            if r is not None:
                quantize(path, files[g, r], cfg.target, r)
    decision: dict[str, Any] = {"kept": "plain", "reason": why_not, "int8_recipes": list(recipes) if recipes[0] else None,
                                "first_token_only": first_token["plain"]}
    if len(files) > 1:
        texts, tok = [r["text"] for r in train.val], load_tokenizer(out, train.max_length, pad_id)
        t = time_graphs(files, tok, texts, cfg.latency_texts, cfg.threads)
        # One figure per candidate: the geometric mean of ms per text at batch 1 and at batch 32.
        score = {k: (v["batch1"] * v["batch32"]) ** 0.5 for k, v in t.items()}
        best = {g: min((k for k in files if k[0] == g), key=score.get) for g in graphs}
        fused = "optimized" in graphs and score[best["optimized"]] <= OPTIMIZE_MARGIN * score[best["plain"]]
        kept = "optimized" if fused else "plain"
        decision = {
            "kept": kept,
            "reason": why_not if "optimized" not in graphs else "faster" if fused else f"not {100 * (1 - OPTIMIZE_MARGIN):.0f}% faster",
            # the kept graph's recipes, fastest first: the order the verification tries them in
            "int8_recipes": sorted((k[1] for k in files if k[0] == kept), key=lambda r: score[kept, r]) if recipes[0] else None,
            "ms_per_item": {"/".join(x for x in k if x): v for k, v in t.items()},
            "first_token_only": first_token[kept],
        }
    kept = decision["kept"]
    place(graphs[kept], out / "model.onnx")
    if decision["int8_recipes"]:
        place(files[kept, decision["int8_recipes"][0]], out / "model.int8.onnx")
    return decision


def write_labels_json(cfg: ExportConfig, train: TrainRun, out: Path, pad_id: int, decision: dict) -> dict:
    inputs, outputs = tensor_specs(out / "model.onnx")
    meta = {
        "labels": train.labels,
        "max_length": train.max_length,
        "default_model": "model.int8.onnx" if cfg.quantize == "int8" else "model.onnx",
        "inputs": list(inputs),
        "outputs": list(outputs),
        "tensors": {**inputs, **outputs},
        "pad_token_id": pad_id,
        "model_type": train.model_type,
        "architecture": train.architecture,
        "graph_optimized": decision["kept"] == "optimized",
        "quantization": {"type": cfg.quantize, "target": cfg.target if cfg.quantize == "int8" else None},
    }
    write_json(out / LABELS_FILE, meta)
    return meta


@contextmanager
def step(what: str, key: str, seconds: dict[str, float]) -> Iterator[None]:
    """A progress line on stderr (an export takes a minute or two) and the step's time in metrics."""
    sys.stderr.write(f"export: {what}...\n")
    t = time.perf_counter()
    yield
    seconds[key] = round(time.perf_counter() - t, 2)


def export(cfg: ExportConfig, out: Path, overwrite: bool = False) -> dict[str, Any]:
    """Export into `out`, which is checked and held (runs.claim) for the whole run."""
    from distill.runs import claim

    with claim(Path(out), "export", cfg.resolved(), overwrite, reads=[cfg.model]) as owned:
        return _export(cfg, Path(out), owned.replace)


def _export(cfg: ExportConfig, out: Path, replace: bool) -> dict[str, Any]:
    """Export, verify and describe; returns metrics. Raises ParityError / DistillError when a check fails."""
    from distill.export import checks, extras
    from distill.export.card import card

    train = load_train_run(cfg.model, cfg.max_length)
    check_architecture(train)
    settings = cfg.resolved()
    out = start_run(Path(out), "export", settings, replace=replace)
    # A folder exported before with other options must not keep its old models (an .ort of another int8).
    for stale in [*out.glob("model*.onnx"), *out.glob("model*.onnx.data"), *out.glob("model*.ort"),
                  out / "required_operators.config", out / LABELS_FILE]:
        stale.unlink(missing_ok=True)
    work = out / ".work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    metrics: ExportMetrics = {"schema_version": SCHEMA_VERSION, "labels": train.labels, "max_length": train.max_length,
                              "val_rows": len(train.val)}
    seconds = metrics["step_seconds"] = {}
    started = time.perf_counter()
    try:
        with step("export to ONNX, optimize, quantize", "build", seconds):
            pad_id = write_tokenizer(train, out)
            decision = build_models(cfg, train, out, work, pad_id)
            meta = write_labels_json(cfg, train, out, pad_id, decision)
        metrics["graph_optimization"] = decision
        with step("verify: parity, accuracy, speed", "verify", seconds):
            requantize = lambda recipe: quantize(out / "model.onnx", out / "model.int8.onnx", cfg.target, recipe)  # noqa: E731
            fastest = decision["int8_recipes"] or []
            order = [*fastest, *(r for r in RECIPES if r not in fastest)]
            checks.verify(cfg, train, out, metrics, requantize, order)  # fills metrics as it goes, raises on a failed check
        if cfg.with_tokenizer:
            with step("tokenizer-in-graph model", "with_tokenizer", seconds):
                extras.tokenizer_in_graph(cfg, train, out, metrics)
        if cfg.ort:
            with step("ORT format", "ort", seconds):
                extras.ort_format(cfg, train, out, metrics)
    except DistillError as e:
        metrics["seconds"] = round(time.perf_counter() - started, 2)
        metrics["failed"] = str(e)
        write_json(out / METRICS_JSON, metrics)  # what was measured up to the failure, for the post-mortem
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    metrics["seconds"] = round(time.perf_counter() - started, 2)
    meta["files"] = sorted(p.name for p in out.iterdir() if p.suffix in (".onnx", ".ort", ".config", ".data"))
    if cfg.quantize == "int8":
        meta["quantization"].update(recipe=metrics["int8_recipe"], per_channel=True)
    write_json(out / LABELS_FILE, meta)
    finish_run(out, "export", settings, metrics, card(meta, metrics, train.dir))
    return metrics
