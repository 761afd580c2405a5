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


# --- train -------------------------------------------------------------------------------------------


# --- export / predict --------------------------------------------------------------------------------


# --- run / report ------------------------------------------------------------------------------------


def main() -> None:
    app()


if __name__ == "__main__":
    main()
