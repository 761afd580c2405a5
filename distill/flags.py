"""CLI flags derived from the typed configs: one flag per setting, named after it, with its help and default.

    @stage_command(app, "train", TrainConfig, argument="data", ...)
    def train_command(cfg: TrainConfig, out: Path) -> None: ...

gives `distill train DATA --out DIR` a `--batch-size` for `batch_size`, a `--resume/--no-resume` for `resume`,
and so on for every field of TrainConfig: the field's docstring is the help, its default is shown from the
config, and a flag that is not given leaves the setting to `--recipe`, `--set` and the config default, in
that order of strength (a flag beats `--set`, which beats the recipe). Settings whose type has no flag
(a mapping, a list of examples) are set in a recipe or with `--set`. Old flag spellings stay as hidden
aliases so that scripts written against them keep working.
"""

from __future__ import annotations

import functools
import inspect
import types
import typing
from pathlib import Path
from typing import Any, Callable, Literal, Optional, Union

import typer
from pydantic import BaseModel
from pydantic.fields import FieldInfo

CSV = "comma-separated"  # a list[str] setting takes one comma-separated value: --labels a,b,c


def flag_kind(annotation: Any) -> type | str | None:
    """The Python type a setting's flag parses (str, int, float, bool, or CSV for a list of strings);
    None for a setting that has no flag."""
    if typing.get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return flag_kind(args[0]) if len(args) == 1 else None
    if typing.get_origin(annotation) is Literal:
        return str
    if typing.get_origin(annotation) is list and typing.get_args(annotation) == (str,):
        return CSV
    return annotation if annotation in (str, int, float, bool) else None


def flag_fields(model: type[BaseModel]) -> dict[str, FieldInfo]:
    """The settings of `model` that have a flag, by field name."""
    return {name: f for name, f in model.model_fields.items() if flag_kind(f.annotation) is not None}


def flag_name(field: str) -> str:
    return "--" + field.replace("_", "-")


def help_text(field: FieldInfo) -> str:
    """The field's description, and its default from the config when it has a plain one."""
    text = (field.description or "").strip()
    default = None if field.default_factory is not None else field.default
    if default is None or isinstance(default, bool) or "(default" in text:
        return text  # a None default is explained in the description; a bool flag reads as on or off
    shown = f"{default:g}" if isinstance(default, float) else str(default)
    return f"{text.removesuffix('.')} (default: {shown})."


def option(field_name: str, field: FieldInfo) -> inspect.Parameter:
    kind = flag_kind(field.annotation)
    name = flag_name(field_name)
    if kind is bool:  # a setting that is on by default is turned off with --no-NAME
        names = f"{name}/--no-{name[2:]}" if field.default is True else name
        info = typer.Option(None, names, help=help_text(field))
    else:
        info = typer.Option(None, name, help=help_text(field) + (" Comma-separated." if kind is CSV else ""))
    annotation = Optional[str if kind is CSV else kind]  # type: ignore[valid-type]
    return inspect.Parameter(field_name, inspect.Parameter.KEYWORD_ONLY, default=info, annotation=annotation)


def split_csv(value: Optional[str]) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()] if value else []


def settings_from_flags(model: type[BaseModel], values: dict[str, Any]) -> dict[str, Any]:
    """Only the flags the user gave (None: not given), converted to the setting's type."""
    given = {}
    for name, f in flag_fields(model).items():
        value = values.get(name)
        if value is not None:
            given[name] = (split_csv(value) or None) if flag_kind(f.annotation) is CSV else value
    return {k: v for k, v in given.items() if v is not None}


def stage_settings(section: str, recipe: Path | None, sets: list[str], flags: dict[str, Any]) -> dict[str, Any]:
    """A stage's settings: the recipe's section, then --set KEY=VALUE (or SECTION.KEY=VALUE), then the flags."""
    from distill.config import apply_sets, load_yaml

    base = dict(load_yaml(recipe).get(section) or {}) if recipe else {}
    dotted = [s if s.startswith(f"{section}.") else f"{section}.{s}" for s in sets]
    return {**apply_sets({section: base}, dotted)[section], **flags}


def stage_command(
    app: typer.Typer,
    name: str,
    model: type[BaseModel],
    *,
    source: str,
    argument: str | None = None,
    argument_required: bool = True,
    metavar: str | None = None,
    out_help: str,
    aliases: dict[str, tuple[str, str]] | None = None,
    extra: dict[str, Any] | None = None,
    wrap: Callable[[Callable[..., Any]], Callable[..., Any]] = lambda fn: fn,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register `body(cfg, out, **extra)` as the command `name`, with a flag for every setting of `model`.

    argument: the setting given as the positional argument (train's DATA); aliases: {old flag parameter:
    ("--old-flag", setting)}, hidden; extra: {parameter: typer.Option(...)} flags that are not settings
    (export's --onnx). `source` names the settings in error messages ("label settings: concurrency: ...");
    `wrap` is applied to the command (the CLI's error handling).
    """
    aliases = aliases or {}
    extra = extra or {}

    def decorate(body: Callable[..., Any]) -> Callable[..., Any]:
        def command(**values: Any) -> Any:
            out, recipe, sets = values.pop("out"), values.pop("recipe"), values.pop("set_")
            extras = {p: values.pop(p) for p in extra}
            for param, (_, setting) in aliases.items():
                old = values.pop(param)
                if values.get(setting) is None:
                    values[setting] = old
            from distill.config import build

            flags = settings_from_flags(model, values)
            if argument and values.get(argument) is not None:
                flags[argument] = str(values[argument])
            cfg = build(model, stage_settings(model_section(model), recipe, sets, flags), source)
            return body(cfg, out, **extras)

        params = parameters(model, argument, argument_required, metavar, out_help, aliases, extra)
        command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params}
        command.__name__, command.__doc__ = body.__name__, body.__doc__
        app.command(name)(wrap(command))
        return body

    return decorate


def parameters(
    model: type[BaseModel], argument: str | None, argument_required: bool, metavar: str | None, out_help: str,
    aliases: dict[str, tuple[str, str]], extra: dict[str, Any],
) -> list[inspect.Parameter]:
    """The command's signature as typer reads it: the argument, --out, --recipe, --set, one option per
    setting, the hidden old spellings, and the extra flags."""
    params: list[inspect.Parameter] = []
    if argument:
        arg = typer.Argument(... if argument_required else None, metavar=metavar, help=model.model_fields[argument].description)
        params.append(inspect.Parameter(argument, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=arg,
                                        annotation=str if argument_required else Optional[str]))
    kw = inspect.Parameter.KEYWORD_ONLY
    params += [
        inspect.Parameter("out", kw, default=typer.Option(..., "--out", "-o", help=out_help), annotation=Path),
        inspect.Parameter("recipe", kw, annotation=Optional[Path], default=typer.Option(
            None, help=f"Take the settings of a recipe's {model_section(model)} section; --set and flags override.")),
        inspect.Parameter("set_", kw, annotation=list[str], default=typer.Option(
            [], "--set", metavar="KEY=VALUE", help="Set any setting, e.g. --set seed=1 (the value is read as YAML). Repeatable.")),
    ]
    params += [option(n, f) for n, f in flag_fields(model).items() if n != argument]
    for param, (flag, setting) in aliases.items():
        kind = flag_kind(model.model_fields[setting].annotation)
        params.append(inspect.Parameter(param, kw, annotation=Optional[kind],  # type: ignore[valid-type]
                                        default=typer.Option(None, flag, hidden=True)))
    return params + [inspect.Parameter(p, kw, default=info, annotation=bool) for p, info in extra.items()]


@functools.cache
def model_section(model: type[BaseModel]) -> str:
    """The recipe section a stage config is read from: PipelineConfig's field of that type."""
    from distill.config import PipelineConfig

    for section, f in PipelineConfig.model_fields.items():
        if f.annotation is model or model in typing.get_args(f.annotation):  # audit: AuditConfig | None
            return section
    return model.__name__.removesuffix("Config").lower()
