"""The `distill` command. Thin: parse flags, build a typed config, call one stage function.

Errors from the DistillError family become one line on stderr and exit code 2 (bad input) or 1
(run-time failure); nothing here imports torch, so `distill --help` stays fast.
"""

from __future__ import annotations

import functools
import sys
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
    examples: Optional[str] = typer.Option(None, "--examples", help="Few-shot examples file with text,label."),
    instructions: Optional[str] = typer.Option(None, help="The task sentence at the top of the prompt."),
    concurrency: Optional[int] = typer.Option(None, help="Requests in flight (default 8)."),
    timeout: Optional[float] = typer.Option(None, help="Seconds per request (default 60)."),
    max_retries: Optional[int] = typer.Option(None, help="Retries per request on 429/5xx/timeouts (default 6)."),
    max_rows: Optional[int] = typer.Option(None, help="Label only the first N rows."),
    max_text_chars: Optional[int] = typer.Option(None, help="Longer texts are truncated and counted (default 4000)."),
    calibrate: Optional[bool] = typer.Option(None, "--calibrate/--no-calibrate", help="Contextual calibration (default on)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print rows, tokens and cost; call nothing."),
    max_cost: Optional[float] = typer.Option(None, help="Stop before spending more than this many USD."),
    price_in: Optional[float] = typer.Option(None, help="USD per 1M prompt tokens, for models not in the price table."),
    price_out: Optional[float] = typer.Option(None, help="USD per 1M completion tokens."),
    batch: bool = typer.Option(False, "--batch", help="Use the OpenAI Batch API (half price, resumable)."),
    poll_seconds: Optional[float] = typer.Option(None, help="How often to poll a batch (default 30)."),
    cache: Optional[str] = typer.Option(None, help="Answer cache (SQLite) path (default ~/.cache/distill/teacher.sqlite)."),
    threads: Optional[int] = typer.Option(None, help="CPU threads for the embedded teacher."),
) -> None:
    """Label texts with a teacher LLM (scored by logprobs, cached, resumable)."""
    from distill.config import LabelConfig, build, load_yaml

    base = dict(load_yaml(recipe).get("label") or {}) if recipe else {}
    flags = overrides(
        input=input, labels=split_csv(labels) or None, labels_file=labels_file, teacher=teacher,
        teacher_model=teacher_model, base_url=base_url, endpoint=endpoint, text_column=text_column,
        examples_file=examples, instructions=instructions, concurrency=concurrency, timeout=timeout,
        max_retries=max_retries, max_rows=max_rows, max_text_chars=max_text_chars, calibrate=calibrate,
        max_cost=max_cost, price_in=price_in, price_out=price_out, cache=cache, threads=threads,
        batch_poll_seconds=poll_seconds,
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
    dist = ", ".join(f"{k} {v} ({v / max(m['labeled'], 1):.0%})" for k, v in m["label_distribution"].items())
    typer.echo(
        f"labeled {m['labeled']}/{m['rows']} rows in {m['seconds']:.1f} s "
        f"({m['teacher_calls']} teacher calls, {m['cached']} from cache, ${m['cost_usd']:.4f})"
    )
    typer.echo(f"labels: {dist or 'none'}")
    if m["low_confidence_share"] is not None:
        typer.echo(f"low confidence: {m['low_confidence']} rows ({m['low_confidence_share']:.0%})")
    if m["invalid"] or m["errors"] or m["skipped"] or m["truncated"]:
        typer.echo(
            f"invalid answers: {m['invalid']} (kept raw), failed requests: {m['errors']}, "
            f"skipped at budget: {m['skipped']}, truncated texts: {m['truncated']}"
        )
    if m["errors"]:
        typer.echo(f"last error: {m['last_error']}. Run the same command again to retry the failed rows.")
    if m["stopped_by_budget"]:
        typer.echo("stopped at --max-cost; raise it and run the same command again to label the rest.")
    typer.echo(f"wrote {out}/labels.jsonl")


# --- train -------------------------------------------------------------------------------------------


@app.command("train")
@handle_errors
def train_cmd(
    data: str = typer.Argument(..., help="A finished label run folder, or a labeled .csv/.jsonl/.parquet file."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder to write (model/, metrics.json, val.jsonl)."),
    student: Optional[str] = typer.Option(None, help="`minilm` (bundled, offline), a local model folder, or a hub id."),
    gold: Optional[str] = typer.Option(None, help="Texts with true labels: student (and teacher) accuracy on them."),
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
    precision: Optional[str] = typer.Option(None, help="auto | fp32 | bf16 | fp16 (default: auto: bf16/fp16 on GPU, fp32 on CPU)."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run from its last checkpoint."),
    trust_remote_code: bool = typer.Option(False, "--trust-remote-code", help="Allow the student's own code."),
) -> None:
    """Fine-tune a small student on a teacher's labels (or any labeled file)."""
    import os

    from distill.config import TrainConfig, build
    from distill.train import end_distributed_worker, train

    settings = overrides(
        data=data, student=student, gold=gold, text_column=text_column, label_column=label_column, epochs=epochs,
        max_steps=max_steps, learning_rate=learning_rate, batch_size=batch_size, max_length=max_length, loss=loss,
        temperature=temperature, alpha=alpha, min_confidence=min_confidence, val_fraction=val_fraction, seed=seed,
        early_stopping_patience=patience, warmup_ratio=warmup_ratio, eval_steps=eval_steps,
        class_balance=class_balance, precision=precision, resume=resume or None,
        trust_remote_code=trust_remote_code or None,
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


# --- export / predict --------------------------------------------------------------------------------


# --- run / report ------------------------------------------------------------------------------------


@app.command("run")
@handle_errors
def run_cmd(
    recipe: Path = typer.Argument(..., help="A YAML recipe with label / train / export sections, e.g. pipelines/restaurant-reviews.yaml."),
    set_: list[str] = typer.Option([], "--set", help="Override a recipe setting: --set train.epochs=3 (the value is read as YAML). Repeatable."),
    plan_only: bool = typer.Option(False, "--plan", help="Print what would run or be skipped, and how long it should take; run nothing."),
) -> None:
    """Label -> train -> export from one recipe into artifacts/<name>/, skipping stages already done with the same settings."""
    from distill.pipeline import describe_plan, load_recipe, plan, run_pipeline

    cfg = load_recipe(recipe, set_)
    if plan_only:
        for line in describe_plan(cfg, plan(cfg)):
            typer.echo(line)
        return
    run_pipeline(cfg, say=typer.echo)


@app.command("report")
@handle_errors
def report_cmd(
    run_dir: Path = typer.Argument(..., help="The folder `distill run` wrote (artifacts/<name>), or one stage's run folder."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Where to write the HTML (default: RUN_DIR/report.html)."),
) -> None:
    """Rebuild the HTML report from the run folders (labels, student metrics, size and latency, time and money)."""
    from distill.report import build_report

    typer.echo(str(build_report(run_dir, out)))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
