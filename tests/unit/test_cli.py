"""The command line itself: help is fast (no heavy imports) and every subcommand has working help."""

import subprocess
import sys

import pytest


def test_cli_import_pulls_in_no_heavy_packages():
    code = (
        "import sys, distill.cli\n"
        "heavy = [m for m in ('torch', 'transformers', 'onnx', 'onnxruntime', 'datasets', 'openai', 'xllamacpp') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"`distill --help` would import {out}"


@pytest.mark.parametrize("cmd", [[], ["label"], ["train"], ["export"], ["predict"], ["run"], ["report"]])
def test_every_subcommand_has_help(cmd):
    done = subprocess.run([sys.executable, "-m", "distill.cli", *cmd, "--help"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "Usage" in done.stdout


# --- flags are the config's settings ------------------------------------------------------------------

STAGES = {"label": ("LabelConfig", "input"), "train": ("TrainConfig", "data"), "export": ("ExportConfig", "model"),
          "audit": ("AuditConfig", "label_run")}
COMMON = {"--out", "--recipe", "--set", "--help", "--overwrite"}  # every stage command has these; they are not settings
NOT_SETTINGS = {"export": {"--onnx"}}
# Settings whose type has no flag (a mapping, a list of examples): a recipe or --set gives them.
RECIPE_ONLY = {"label": {"label_descriptions", "examples"}}


def command_params(name: str) -> list:
    import typer.main

    from distill.cli import app

    return typer.main.get_command(app).commands[name].params


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_every_setting_is_a_flag_of_the_same_name(stage):
    import distill.config

    model, argument = STAGES[stage]
    fields = set(getattr(distill.config, model).model_fields)
    params = command_params(stage)
    visible = {opt for p in params if not getattr(p, "hidden", False) for opt in p.opts if opt.startswith("--")}
    flags = {"--" + f.replace("_", "-") for f in fields - {argument} - RECIPE_ONLY.get(stage, set())}
    assert visible - COMMON - NOT_SETTINGS.get(stage, set()) == flags
    # the positional argument is the setting of that name
    assert [p.name for p in params if p.param_type_name == "argument"] == [argument]


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_every_flag_has_help_with_the_config_default(stage):
    import distill.config

    model = getattr(distill.config, STAGES[stage][0])
    options = {p.name: p for p in command_params(stage) if p.param_type_name == "option" and not p.hidden}
    for name, p in options.items():
        assert p.help, f"{stage} {p.opts[0]}: no help (give the config field a docstring)"
        field = model.model_fields.get(name)
        if field is not None and field.default is not None and not isinstance(field.default, bool) and field.default_factory is None:
            shown = f"{field.default:g}" if isinstance(field.default, float) else str(field.default)
            assert f"(default: {shown})" in p.help, f"{stage} {p.opts[0]}: the help does not show the config default"


@pytest.mark.parametrize(("old", "setting", "value"), [
    (["--patience", "7"], "early_stopping_patience", 7), (["--lr", "0.001"], "learning_rate", 0.001),
    (["--early-stopping-patience", "7"], "early_stopping_patience", 7), (["--set", "epochs=3"], "epochs", 3.0),
    (["--set", "train.seed=5", "--seed", "6"], "seed", 6),  # a flag beats --set
])
def test_old_spellings_and_set_reach_the_train_config(monkeypatch, tmp_path, old, setting, value):
    from typer.testing import CliRunner

    import distill.train
    from distill.cli import app

    seen = {}
    monkeypatch.setattr(distill.train, "train", lambda cfg, out, **kw: seen.setdefault("cfg", cfg) and {} or {})
    monkeypatch.setenv("RANK", "1")  # no summary line to print from the stand-in's empty metrics
    result = CliRunner().invoke(app, ["train", "data.csv", "--out", str(tmp_path / "o"), *old])
    assert result.exit_code == 0, result.output
    assert getattr(seen["cfg"], setting) == value


def test_recipe_section_then_set_then_flags(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import distill.export
    from distill.cli import app

    recipe = tmp_path / "r.yaml"
    recipe.write_text("export:\n  target: arm64\n  atol: 0.01\n  latency_texts: 5\n")
    seen = {}
    monkeypatch.setattr(distill.export, "export", lambda cfg, out, **kw: seen.setdefault("cfg", cfg) and None)
    CliRunner().invoke(app, ["export", "train-run", "-o", str(tmp_path / "o"), "--recipe", str(recipe),
                             "--set", "atol=0.02", "--set", "latency_texts=6", "--latency-texts", "7"])
    cfg = seen["cfg"]
    assert (cfg.target, cfg.atol, cfg.latency_texts, cfg.model) == ("arm64", 0.02, 7, "train-run")
