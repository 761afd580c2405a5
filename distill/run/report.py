"""The run report: one self-contained HTML file (plots embedded as PNG) that opens offline.

    distill report artifacts/restaurant-reviews      # a pipeline folder (label/, train/, export/)
    distill report artifacts/my-export-run           # or any stage folder: upstream runs are followed

It only reads what the stages wrote: labels.jsonl, config.json, metrics.json and the model files, so it
can be rebuilt at any time. Plots come from matplotlib (Agg, no display needed).
"""

from __future__ import annotations

import datetime as dt
import html
from pathlib import Path
from typing import Any

from distill.errors import BadInput
from distill.formatting import duration, megabytes, pct
from distill.metrics import engine_rows
from distill.run.charts import (
    plot_confidence,
    plot_confusion,
    plot_gold,
    plot_label_distribution,
    plot_size_latency,
    plot_time,
)
from distill.runs import (
    CONFIG_JSON, LABELS_JSONL, MANIFEST, PIPELINE_JSON, REPORT_HTML, STAGES, UPSTREAM, is_finished, read_json, read_jsonl,
    read_metrics, read_settings,
)  # fmt: skip

SOURCES = {"logprobs": "scored from the teacher's token probabilities", "json": "read from a JSON answer",
           "invalid": "with an answer that is no label", "skipped": "skipped at the budget cap", "error": "never answered"}


# --- finding and reading the runs ---------------------------------------------------------------------


def find_runs(run_dir: Path) -> tuple[dict[str, Path], Path]:
    """{stage: finished run folder} reachable from `run_dir`, and the folder the report belongs in."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise BadInput(f"{run_dir}: no such folder. Pass a pipeline folder (artifacts/<recipe>) or a run folder.")
    found: dict[str, Path] = {}
    if is_finished(run_dir):
        found[read_json(run_dir / MANIFEST).get("stage", "")] = run_dir
    else:
        for stage in STAGES:
            if is_finished(run_dir / stage) and read_json(run_dir / stage / MANIFEST).get("stage") == stage:
                found[stage] = run_dir / stage
    # Follow the links each stage recorded to its input (export.model -> train, train.data -> label).
    for stage, (key, upstream) in reversed(UPSTREAM.items()):  # export -> train first, then train -> label
        if stage in found and upstream not in found:
            src = read_settings(found[stage]).get(key)
            if src and is_finished(Path(src)) and read_json(Path(src) / MANIFEST).get("stage") == upstream:
                found[upstream] = Path(src)
    found = {s: found[s] for s in STAGES if s in found}
    if not found:
        raise BadInput(
            f"{run_dir}: no finished label, train or export run in it. "
            "Pass the folder `distill run` wrote (artifacts/<recipe name>) or one stage's run folder."
        )
    return found, run_dir


def read_labels(run: Path) -> list[dict[str, Any]]:
    path = run / LABELS_JSONL
    return read_jsonl(path) if path.is_file() else []


# --- the page -----------------------------------------------------------------------------------------


def build_report(run_dir: Path, out: Path | None = None) -> Path:
    """Write report.html for the runs found from `run_dir` and return its path."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise BadInput("the report needs matplotlib: pip install 'distill[report]'") from None
    runs, home = find_runs(run_dir)
    state = read_json(home / PIPELINE_JSON) if (home / PIPELINE_JSON).is_file() else {}
    recipe = state.get("recipe", {})
    title = recipe.get("name") or home.resolve().name
    sections = [
        _summary(runs),
        _teacher_section(runs.get("label")),
        _unsure_section(runs.get("label")),
        _audit_section(runs.get("audit")),
        _student_section(runs.get("train")),
        _gold_section(runs.get("train")),
        _deploy_section(runs.get("train"), runs.get("export")),
        _cost_section(runs, state),
        _sources_section(runs),
    ]
    page = PAGE.format(
        title=html.escape(title),
        description=html.escape(recipe.get("description", "")),
        when=dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
        body="\n".join(s for s in sections if s),
    )
    path = Path(out) if out else home / REPORT_HTML
    path.write_text(page, encoding="utf-8")
    return path


def _table(head: list[str], rows: list[list[Any]], cls: str = "") -> str:
    th = "".join(f"<th>{html.escape(str(h))}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>'


def _section(sid: str, title: str, inner: str) -> str:
    return f'<section id="{sid}"><h2>{html.escape(title)}</h2>{inner}</section>'


def _missing(stage: str) -> str:
    return f'<p class="muted">No finished {stage} run was found, so this part is empty.</p>'


def _label_names(label_run: Path | None, rows: list[dict]) -> list[str]:
    names = list(read_settings(label_run).get("labels") or []) if label_run else []
    for r in rows:
        if r.get("label") is not None and r["label"] not in names:
            names.append(r["label"])
    return names


def _summary(runs: dict[str, Path]) -> str:
    cards = []
    lm, tm = read_metrics(runs.get("label")), read_metrics(runs.get("train"))
    if "label" in runs:
        rows = read_labels(runs["label"])
        teacher = read_settings(runs["label"]).get("teacher", "?")
        cards.append((f"{len(rows)}", f"rows labeled by teacher <b>{html.escape(str(teacher))}</b>"))
    if tm:
        cards.append((pct(tm.get("val_accuracy")), "student accuracy on held-out teacher labels"))
        if tm.get("gold_accuracy") is not None:
            teacher = f" (teacher {pct(tm['teacher_gold_accuracy'])})" if tm.get("teacher_gold_accuracy") is not None else ""
            cards.append((pct(tm.get("gold_accuracy")), f"student accuracy on gold labels{teacher}"))
    onnx = [r for r in engine_rows(read_metrics(runs.get("export"))) if r["engine"] != "torch"]
    if onnx:
        best = onnx[-1]
        speed = f", {best['latency_ms_batch1']:.2f} ms/text" if best.get("latency_ms_batch1") is not None else ""
        cards.append((megabytes(best.get("size_bytes")), f"{best['name']} model{speed}"))
    cost = lm.get("cost_usd")
    if isinstance(cost, (int, float)):
        cards.append((f"${cost:.2f}", "spent on the teacher"))
    inner = "".join(f'<div class="card"><div class="big">{v}</div><div>{t}</div></div>' for v, t in cards)
    return f'<section id="summary"><div class="cards">{inner}</div></section>'


def _teacher_section(run: Path | None) -> str:
    if run is None:
        return _section("labels", "What the teacher said", _missing("label"))
    rows = read_labels(run)
    names = _label_names(run, rows)
    threshold = read_settings(run).get("low_confidence")
    conf = plot_confidence(names, rows, threshold)
    invalid = [r for r in rows if r.get("label") is None]
    sources: dict[str, int] = {}
    for r in rows:
        sources[str(r.get("source"))] = sources.get(str(r.get("source")), 0) + 1
    notes = ", ".join(f"{v} {SOURCES.get(k, k)}" for k, v in sorted(sources.items(), key=lambda kv: -kv[1]))
    inner = (
        f'<p>{len(rows)} rows: {notes}.</p><div class="row">'
        f'<figure>{plot_label_distribution(names, rows)}<figcaption>Label distribution</figcaption></figure>'
        + (f"<figure>{conf}<figcaption>Teacher confidence (probability of the chosen label)</figcaption></figure>" if conf
           else '<p class="muted">The teacher gave no probabilities (no logprobs), so there is no confidence histogram.</p>')
        + "</div>"
    )
    if invalid:
        examples = [[r.get("row"), html.escape(_clip(r.get("text"), 120)), html.escape(_clip(r.get("raw") or "", 60))] for r in invalid[:5]]
        inner += f"<p>{len(invalid)} rows got no valid answer; they are left out of training. First ones:</p>"
        inner += _table(["row", "text", "teacher's raw answer"], examples)
    return _section("labels", "What the teacher said", inner)


def _unsure_section(run: Path | None, n: int = 15) -> str:
    if run is None:
        return ""
    rows = [r for r in read_labels(run) if r.get("confidence") is not None]
    if not rows:
        return ""
    rows.sort(key=lambda r: r["confidence"])
    body = []
    for r in rows[:n]:
        probs = r.get("probs") or {}
        top = sorted(probs.items(), key=lambda kv: -kv[1])[:3]
        body.append([
            r.get("row"),
            html.escape(_clip(r.get("text"), 220)),
            f"<b>{html.escape(str(r.get('label')))}</b>",
            f"{r['confidence']:.2f}",
            html.escape(", ".join(f"{k} {v:.2f}" for k, v in top)),
        ])
    inner = (
        "<p>Read these first: they are where the teacher was closest to a coin toss. "
        "Wrong ones here usually mean the label descriptions or the examples need work.</p>"
        + _table(["row", "text", "label", "confidence", "probabilities"], body, "texts")
    )
    return _section("unsure", f"The {min(n, len(rows))} rows the teacher was least sure of", inner)


def _audit_section(run: Path | None, n: int = 15) -> str:
    """`distill audit`'s top suspects: teacher labels a proxy that never saw the row confidently disagrees with."""
    if run is None or not (run / "suspects.jsonl").is_file():
        return ""
    m, suspects = read_metrics(run), read_jsonl(run / "suspects.jsonl")
    body = [[s["rank"], html.escape(_clip(s["text"], 200)), f"<b>{html.escape(str(s['teacher_label']))}</b> {s.get('teacher_prob') or ''}",
             f"{html.escape(str(s['proxy_label']))} {s['proxy_prob']}", html.escape(str(s.get("review_label") or ""))] for s in suspects[:n]]
    review = f" Re-asked to {html.escape(str(m['review_teacher']))}: {m['review_changed']} of {m['reviewed']} answers changed." if "reviewed" in m else ""
    inner = (f"<p>{m.get('suspects')} of {m.get('rows_audited')} teacher labels are suspects ({pct(m.get('suspect_share'))}): a proxy "
             f"trained on the other folds confidently predicts another label.{review} Correct them in <code>{run}/suspects.csv</code> "
             "(column correct_label) and pass it back with <code>--corrections</code>; a person's label then wins in every later run.</p>"
             + _table(["rank", "text", "teacher (prob)", "proxy (prob)", "review teacher"], body, "texts"))
    return _section("suspects", f"The {min(n, len(suspects))} teacher labels most likely wrong", inner)


def _student_section(run: Path | None) -> str:
    if run is None:
        return _section("student", "The student", _missing("train"))
    m = read_metrics(run)
    facts = [
        ["accuracy on held-out teacher labels", pct(m.get("val_accuracy"))],
        ["macro F1 on held-out teacher labels", pct(m.get("val_macro_f1"))],
        ["training rows", m.get("train_rows", "-")],
        ["rows dropped (invalid teacher answer)", m.get("dropped_invalid", "-")],
        ["trained on", html.escape(str(m.get("device", "-")))],
        ["student", html.escape(str(m.get("student") or read_settings(run).get("student", "-")))],  # auto: the one it picked
    ]
    cm = m.get("confusion_matrix")
    labels = m.get("labels") or []
    figure = (f"<figure>{plot_confusion(labels, cm)}<figcaption>Validation confusion matrix (rows: teacher, "
              "columns: student)</figcaption></figure>") if cm and labels else '<p class="muted">No confusion matrix in metrics.json.</p>'
    return _section("student", "The student", f'<div class="row">{figure}{_table(["", ""], facts, "facts")}</div>')


def _gold_section(run: Path | None) -> str:
    m = read_metrics(run)
    if m.get("gold_accuracy") is None:
        return _section("gold", "Against gold labels",
                        '<p class="muted">No gold labels were given (train.gold), so only agreement with the teacher is known.</p>')
    if m.get("teacher_gold_accuracy") is not None:
        diff = 100 * (m["gold_accuracy"] - m["teacher_gold_accuracy"])
        verdict = f"<p>The student is {abs(diff):.1f} points {'above' if diff >= 0 else 'below'} its teacher on the same gold rows."
        if diff < -2:  # why, and what to do: the quality benchmark's reference run shows the student's own ceiling
            verdict += (f" A small student trained on {m.get('train_rows', 'a few hundred')} rows usually is: give it more "
                        "unlabeled text (the teacher's answers are cached, so only new rows cost) or a larger student.")
        verdict += "</p>"
    else:
        verdict = ("<p>The teacher did not label the gold texts, so only the student is scored here. Set label.gold "
                   "to the same file to score both: the teacher labels those texts apart, and train never trains on them.</p>")
    return _section("gold", "Against gold labels", f"{verdict}<figure>{plot_gold(m)}<figcaption>Accuracy and macro F1 on "
                    f"{m.get('gold_rows', 'the')} gold rows</figcaption></figure>")


def _deploy_section(train: Path | None, export: Path | None) -> str:
    rows = engine_rows(read_metrics(export))
    if not rows:
        return _section("deploy", "Size and speed", _missing("export"))
    table = _table(
        ["model", "size", "ms/text, batch 1", "ms/text, batch 32", "accuracy (validation)"],
        [[r["name"], megabytes(r.get("size_bytes")), _num(r.get("latency_ms_batch1")), _num(r.get("ms_per_item_batch32")),
          pct(r.get("val_accuracy"))] for r in rows],
    )
    m = read_metrics(export)
    how = (f"<p class=\"muted\">Measured by the export on the machine that ran it: {m.get('timed_texts', '?')} validation "
           f"texts, {m.get('threads', '?')} thread(s), the model call only (tokenization not timed).</p>") if m else ""
    if m.get("int8_accuracy_note"):
        how += f"<p><b>Note:</b> {html.escape(m['int8_accuracy_note'])}</p>"
    return _section("deploy", "Size and speed: PyTorch vs ONNX", f"<figure>{plot_size_latency(rows)}</figure>{table}{how}")


def _num(v: Any) -> str:
    return f"{v:.2f}" if isinstance(v, (int, float)) else "-"


def stage_seconds(run: Path, m: dict[str, Any], state: dict[str, Any], stage: str) -> float | None:
    """A stage's wall time: its own metrics, else what the pipeline measured, else config -> manifest times."""
    if isinstance(m.get("seconds"), (int, float)):
        return float(m["seconds"])
    recorded = state.get("stages", {}).get(stage, {}).get("seconds")
    if isinstance(recorded, (int, float)):
        return float(recorded)
    try:
        start = dt.datetime.strptime(read_json(run / CONFIG_JSON)["started_at"], "%Y-%m-%dT%H:%M:%S%z")
        end = dt.datetime.strptime(read_json(run / MANIFEST)["finished_at"], "%Y-%m-%dT%H:%M:%S%z")
        return (end - start).total_seconds()
    except (KeyError, ValueError, OSError):
        return None


def _cost_section(runs: dict[str, Path], state: dict[str, Any]) -> str:
    rows = []
    for stage, run in runs.items():
        m = read_metrics(run)
        cost = m.get("cost_usd") if stage == "label" else m.get("review_cost_usd") or 0.0 if stage == "audit" else 0.0
        notes = {
            "label": f"teacher {html.escape(str(read_settings(run).get('teacher', '?')))}"
            + (f", {m['teacher_calls']} calls" if "teacher_calls" in m else ""),
            "audit": "proxy on this machine" + (f", {m['review_teacher_calls']} calls to the review teacher" if m.get("review_teacher_calls") else ""),
            "train": f"on {html.escape(str(m.get('device', '?')))}",
            "export": "local",
        }.get(stage, "")
        rows.append({"stage": stage, "seconds": stage_seconds(run, m, state, stage), "cost": cost, "notes": notes})
    total_s = sum(r["seconds"] or 0 for r in rows)
    known = [r["cost"] for r in rows if isinstance(r["cost"], (int, float))]
    table = _table(
        ["stage", "time", "money", "notes"],
        [[r["stage"], duration(r["seconds"]), f"${r['cost']:.4f}" if isinstance(r["cost"], (int, float)) else "unknown", r["notes"]] for r in rows]
        + [["<b>total</b>", f"<b>{duration(total_s)}</b>", f"<b>${sum(known):.4f}</b>", ""]],
    )
    return _section("cost", "Time and money per stage", f'<div class="row"><figure>{plot_time(rows)}</figure>{table}</div>')


def _sources_section(runs: dict[str, Path]) -> str:
    rows = [[s, f"<code>{html.escape(str(p))}</code>"] for s, p in runs.items()]
    return _section("sources", "Run folders", _table(["stage", "folder"], rows) + "<p class=\"muted\">Rebuild this page with <code>distill report FOLDER</code>.</p>")


def _clip(text: Any, n: int) -> str:
    s = " ".join(str(text or "").split())
    return s if len(s) <= n else s[: n - 1] + "…"


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>distill report: {title}</title>
<style>
body {{ font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #202124; margin: 0; background: #f6f7f9; }}
main {{ max-width: 1080px; margin: 0 auto; padding: 24px 28px 48px; }}
h1 {{ margin: 0 0 4px; font-size: 26px; }}
h2 {{ font-size: 19px; margin: 0 0 10px; }}
section {{ background: #fff; border: 1px solid #e3e5e8; border-radius: 10px; padding: 18px 22px; margin: 16px 0; }}
.muted, figcaption, header p {{ color: #5f6368; }}
figcaption {{ font-size: 13px; text-align: center; }}
figure {{ margin: 6px 12px 6px 0; }}
img {{ max-width: 100%; height: auto; }}
.row {{ display: flex; flex-wrap: wrap; align-items: flex-start; gap: 12px; }}
.cards {{ display: flex; flex-wrap: wrap; gap: 12px; }}
.card {{ flex: 1 1 140px; background: #f1f5fb; border-radius: 8px; padding: 12px 14px; font-size: 13px; }}
.card .big {{ font-size: 24px; font-weight: 650; color: #1f4e8c; }}
table {{ border-collapse: collapse; font-size: 14px; margin: 8px 0; }}
th, td {{ text-align: left; padding: 5px 10px; border-bottom: 1px solid #eceef1; vertical-align: top; }}
th {{ font-weight: 600; background: #fafbfc; }}
table.texts td:nth-child(2) {{ max-width: 560px; }}
table.facts td:first-child {{ color: #5f6368; }}
code {{ font-size: 13px; }}
</style></head>
<body><main>
<header><h1>distill report: {title}</h1><p>{description}</p><p>Built {when} from the run folders listed at the end.</p></header>
{body}
</main></body></html>
"""
