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
