"""The report's charts: matplotlib figures (Agg, no display) returned as inline <img> tags.

Each function takes plain numbers read from the run folders and returns HTML; report.py lays them out.
"""

from __future__ import annotations

import base64
import io
from typing import Any

from distill.formatting import duration

TEACHER_COLOR, STUDENT_COLOR, MUTED = "#7a5195", "#1f77b4", "#9aa0a6"
ENGINE_COLORS = {"torch": "#9aa0a6", "onnx_fp32": "#1f77b4", "onnx_int8": "#2ca02c"}


# --- plots --------------------------------------------------------------------------------------------


def _figure(w: float = 6.0, h: float = 3.2):
    from matplotlib.figure import Figure

    return Figure(figsize=(w, h), dpi=100)


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight", pad_inches=0.08)  # cheaper than constrained layout
    return f'<img alt="" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def _style(ax) -> None:
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.tick_params(labelsize=9)


def plot_label_distribution(labels: list[str], rows: list[dict]) -> str:
    counts = [sum(1 for r in rows if r.get("label") == lab) for lab in labels]
    invalid = sum(1 for r in rows if r.get("label") is None)
    names, values = list(labels) + (["(invalid)"] if invalid else []), counts + ([invalid] if invalid else [])
    fig = _figure(4.4, 0.7 + 0.42 * len(names))
    ax = fig.add_subplot()
    colors = [_label_color(i) for i in range(len(labels))] + ([MUTED] if invalid else [])
    bars = ax.barh(names[::-1], values[::-1], color=colors[::-1])
    ax.bar_label(bars, labels=[f"{v} ({100 * v / max(1, len(rows)):.0f}%)" for v in values[::-1]], padding=3, fontsize=9)
    ax.set_xlabel("rows", fontsize=9)
    ax.set_xlim(0, max(values + [1]) * 1.25)
    _style(ax)
    return _png(fig)


def plot_confidence(labels: list[str], rows: list[dict], threshold: float | None) -> str | None:
    per_label = [[r["confidence"] for r in rows if r.get("label") == lab and r.get("confidence") is not None] for lab in labels]
    if not any(per_label):
        return None
    fig = _figure(4.8, 2.8)
    ax = fig.add_subplot()
    lo = min(min(v) for v in per_label if v)
    ax.hist(per_label, bins=20, range=(min(lo, 1 / max(2, len(labels))), 1.0), stacked=True,
            color=[_label_color(i) for i in range(len(labels))], label=labels)
    if threshold:
        ax.axvline(threshold, color="#d62728", ls="--", lw=1)
        ax.text(threshold, ax.get_ylim()[1] * 0.95, f" unsure below {threshold:g}", color="#d62728", fontsize=8, va="top")
    ax.set_xlabel("teacher's probability for its label", fontsize=9)
    ax.set_ylabel("rows", fontsize=9)
    ax.legend(fontsize=8, frameon=False, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=min(4, len(labels)))
    _style(ax)
    return _png(fig)


def plot_confusion(labels: list[str], matrix: list[list[int]]) -> str:
    import numpy as np

    cm = np.asarray(matrix, dtype=float)
    share = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    n = len(labels)
    fig = _figure(1.6 + 0.75 * n, 1.3 + 0.65 * n)
    ax = fig.add_subplot()
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(n):
        for j in range(n):
            ax.text(j, i, f"{int(cm[i, j])}", ha="center", va="center", fontsize=10,
                    color="white" if share[i, j] > 0.55 else "#222")
    ax.set_xticks(range(n), labels, rotation=30 if n > 3 else 0, ha="right" if n > 3 else "center", fontsize=9)
    ax.set_yticks(range(n), labels, fontsize=9)
    ax.set_xlabel("student says", fontsize=9)
    ax.set_ylabel("teacher said", fontsize=9)
    return _png(fig)


def plot_gold(m: dict[str, Any]) -> str:
    names, acc, f1 = ["teacher", "student"], [m.get("teacher_gold_accuracy"), m.get("gold_accuracy")], [m.get("teacher_gold_macro_f1"), m.get("gold_macro_f1")]
    keep = [i for i in range(2) if acc[i] is not None]
    fig = _figure(4.8, 2.6)
    ax = fig.add_subplot()
    import numpy as np

    x = np.arange(len(keep))
    for off, vals, label, alpha in ((-0.18, acc, "accuracy", 1.0), (0.18, f1, "macro F1", 0.55)):
        heights = [100 * (vals[i] or 0) for i in keep]
        bars = ax.bar(x + off, heights, 0.36, label=label, alpha=alpha, color=[(TEACHER_COLOR, STUDENT_COLOR)[i] for i in keep])
        ax.bar_label(bars, labels=[f"{h:.1f}" if vals[i] is not None else "" for h, i in zip(heights, keep)], fontsize=8, padding=2)
    ax.set_xticks(x, [names[i] for i in keep])
    ax.set_ylim(0, 109)
    ax.set_ylabel("% on gold labels", fontsize=9)
    ax.legend(fontsize=8, frameon=False, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2)
    _style(ax)
    return _png(fig)


def plot_size_latency(rows: list[dict]) -> str:
    """Size and speed per engine, from distill.metrics.engine_rows."""
    panels = [("size_bytes", "size (MB)", 1e-6), ("latency_ms_batch1", "ms per text, batch 1", 1.0),
              ("ms_per_item_batch32", "ms per text, batch 32", 1.0)]
    panels = [p for p in panels if any(r.get(p[0]) is not None for r in rows)]
    fig = _figure(3.0 * len(panels), 2.6)
    for k, (key, title, scale) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), k + 1)
        have = [r for r in rows if r.get(key) is not None]
        values = [r[key] * scale for r in have]
        bars = ax.bar([r["name"].replace("ONNX ", "ONNX\n") for r in have], values,
                      color=[ENGINE_COLORS.get(r["engine"], MUTED) for r in have])
        ax.bar_label(bars, labels=[f"{v:.3g}" for v in values], fontsize=8, padding=2)
        ax.set_title(title, fontsize=9)
        ax.set_ylim(0, max(values) * 1.2)
        _style(ax)
    return _png(fig)


def plot_time(stage_rows: list[dict]) -> str:
    fig = _figure(5.6, 0.6 + 0.45 * len(stage_rows))
    ax = fig.add_subplot()
    names = [r["stage"] for r in stage_rows][::-1]
    secs = [r["seconds"] or 0 for r in stage_rows][::-1]
    bars = ax.barh(names, secs, color=STUDENT_COLOR)
    ax.bar_label(bars, labels=[duration(s) for s in secs], fontsize=8, padding=3)
    ax.set_xlim(0, max(secs + [1]) * 1.25)
    ax.set_xlabel("seconds", fontsize=9)
    _style(ax)
    return _png(fig)


def _label_color(i: int) -> str:
    return ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"][i % 10]
