"""Shared bits of the benchmark scripts: where results go, what machine they ran on, a table printer.

Results land in artifacts/benchmarks/<name>.json (git-ignored); the printed tables are Markdown, ready to
paste into the README.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "artifacts" / "benchmarks"

# Make `import distill` work when a script is run from a checkout without an installed package.
sys.path.insert(0, str(ROOT))


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    """What the numbers depend on; printed under every table and stored with the results."""
    return {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "python": platform.python_version(),
        "os": platform.platform(terse=True),
        "date": time.strftime("%Y-%m-%d"),
    }


def describe_machine(m: dict[str, Any]) -> str:
    return (f"{m['cpu']}, {m['cores']} cores (OMP_NUM_THREADS={m['omp_num_threads'] or 'unset'}), "
            f"Python {m['python']}, {m['os']}, {m['date']}")


def table(head: list[str], rows: list[list[Any]]) -> str:
    """A Markdown table with right-aligned numbers."""
    cells = [[str(c) for c in head]] + [[_fmt(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(head))]
    numeric = [all(_is_num(r[i]) for r in rows) for i in range(len(head))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(cells[0], widths)) + " |",
             "|" + "|".join(("-" * (w + 1) + ":") if n else ("-" * (w + 2)) for w, n in zip(widths, numeric)) + "|"]
    for r in cells[1:]:
        lines.append("| " + " | ".join(c.rjust(w) if n else c.ljust(w) for c, w, n in zip(r, widths, numeric)) + " |")
    return "\n".join(lines)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:,.3g}" if abs(v) < 10 else f"{v:,.1f}" if abs(v) < 1000 else f"{v:,.0f}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return "-" if v is None else str(v)


def save(name: str, result: dict[str, Any]) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.json"
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path
