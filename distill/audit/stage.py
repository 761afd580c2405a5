"""`distill audit RUN`: which of the teacher's labels are probably wrong.

    distill audit artifacts/reviews/label --out artifacts/reviews/audit
    distill audit artifacts/reviews/label --out ... --review-teacher gpt-4o --base-url https://...   # re-ask the suspects
    distill audit artifacts/reviews/label --out ... --corrections artifacts/reviews/audit/suspects.csv  # a person's fixes

A cheap proxy (frozen student embeddings + logistic regression, distill/audit/proxy.py) is trained on the
teacher's labels in k folds, so every row gets probabilities from a model that never saw it. Those are
averaged with the teacher's own probabilities and scored by confident learning (distill/audit/confident.py):
a row is a suspect when another label is confidently predicted for it, and suspects are ranked by how little
probability their teacher label keeps. Outputs: suspects.jsonl and suspects.csv (a `correct_label` column for a
person to fill in and hand back with --corrections), metrics.json, README.md, manifest.json last.
"""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Any

import numpy as np

from distill import runs
from distill.audit.confident import combine, rank_suspects
from distill.audit.corrections import HUMAN, apply_human_labels, import_corrections
from distill.config import AuditConfig
from distill.errors import BadInput
from distill.metrics import SCHEMA_VERSION, AuditMetrics

SUSPECT_FIELDS = ("rank", "row", "text", "teacher_label", "teacher_prob", "proxy_label", "proxy_prob", "score")


def find_label_run(path: str | Path) -> Path:
    """A label run folder, or a train run whose data is one (audit after training)."""
    p = Path(path)
    if runs.is_finished(p) and runs.read_json(p / runs.MANIFEST).get("stage") == "train":
        data = runs.read_settings(p).get("data")
        if not data or not Path(data).is_dir():
            raise BadInput(f"{p}: this train run learned from {data!r}, not from a label run; audit the label run instead")
        p = Path(data)
    runs.require_finished(p, "label")
    return p


def cache_path(cfg: AuditConfig, label_settings: dict[str, Any]) -> Path:
    from distill.label.cache import default_cache_path

    chosen = cfg.cache or label_settings.get("cache")
    return Path(chosen) if chosen else default_cache_path()


def read_records(label_run: Path) -> list[dict[str, Any]]:
    return runs.read_jsonl(label_run / runs.LABELS_JSONL)


def audit(cfg: AuditConfig, out: Path, argv: list[str] | None = None, overwrite: bool = False) -> dict[str, Any]:
    """Run the audit into `out` (checked and held for the run: runs.claim); returns its metrics."""
    if not cfg.label_run:
        raise BadInput("no run to audit: pass a finished label run folder (or a train run trained on one)")
    label_run = find_label_run(cfg.label_run)
    settings = {**cfg.resolved(), "label_run": str(label_run)}
    with runs.claim(Path(out), "audit", settings, overwrite, reads=[label_run, cfg.label_run]) as owned:
        return _audit(cfg, Path(out), argv, label_run, owned.replace)


def _audit(cfg: AuditConfig, out: Path, argv: list[str] | None, label_run: Path, replace: bool) -> dict[str, Any]:
    settings = runs.read_settings(label_run)
    labels = list(settings.get("labels") or [])
    if len(labels) < 2:
        raise BadInput(f"{label_run}: its config.json names no label set; run `distill label` again")
    out = Path(out)
    runs.start_run(out, "audit", {**cfg.resolved(), "label_run": str(label_run)}, argv, replace=replace)
    started = time.perf_counter()
    store = cache_path(cfg, settings)
    imported = import_corrections(cfg.corrections, labels, store) if cfg.corrections else 0

    records = read_records(label_run)
    humans = apply_human_labels(records, labels, store)
    # One row per distinct labeled text: a duplicate in another fold would let the proxy see its own label.
    index = {lab: i for i, lab in enumerate(labels)}
    first: dict[str, dict[str, Any]] = {}
    for r in records:
        if r.get("label") in index and r.get("text") is not None:
            first.setdefault(r["text"], r)
    rows = list(first.values())
    if not rows:
        raise BadInput(f"{label_run}: no labeled rows to audit")
    texts = [r["text"] for r in rows]
    given = np.array([index[r["label"]] for r in rows])
    teacher = np.array([[float((r.get("probs") or {}).get(lab, np.nan)) for lab in labels] for r in rows])
    if np.isnan(teacher).all():
        teacher = None  # a JSON-mode teacher gave labels without probabilities

    from distill.audit.proxy import cached_embeddings, out_of_fold

    vectors = cached_embeddings(texts, cfg.embedder, out)
    proxy = out_of_fold(vectors, given, len(labels), cfg.folds, cfg.seed)
    scored = rank_suspects(combine(proxy, teacher, cfg.teacher_weight), given, flag_probs=proxy)

    human = np.array([r.get("source") == HUMAN for r in rows])
    picked = np.flatnonzero(scored["issue"] & ~human)  # a person's label is settled, never a suspect
    picked = picked[np.argsort(scored["rank"][picked], kind="stable")]
    suspects = []
    for rank, i in enumerate(picked, start=1):
        p = int(proxy[i].argmax())
        suspects.append({
            "rank": rank, "row": rows[i].get("row"), "text": texts[i], "teacher_label": labels[given[i]],
            "teacher_prob": None if teacher is None or np.isnan(teacher[i, given[i]]) else round(float(teacher[i, given[i]]), 4),
            "proxy_label": labels[p], "proxy_prob": round(float(proxy[i, p]), 4), "score": round(float(scored["score"][i]), 4),
        })
    metrics: AuditMetrics = {
        "schema_version": SCHEMA_VERSION, "rows_audited": len(rows), "suspects": len(suspects), "suspect_share": round(len(suspects) / len(rows), 4),
        "proxy_agreement": round(float((proxy.argmax(1) == given).mean()), 4),
        "human_labels": humans, "corrections_imported": imported, "labels": labels,
        "folds": cfg.folds, "embedder": cfg.embedder, "teacher_weight": cfg.teacher_weight if teacher is not None else 0.0,
        "teacher_probs": teacher is not None, "label_run": str(label_run),
    }
    if cfg.review_teacher and suspects:
        metrics.update(review(cfg, settings, suspects[: cfg.review_top], out))
    runs.write_jsonl(out / "suspects.jsonl", suspects)
    _write_csv(out / "suspects.csv", suspects, labels)
    metrics["seconds"] = round(time.perf_counter() - started, 2)
    runs.finish_run(out, "audit", {**cfg.resolved(), "label_run": str(label_run)}, metrics, _card(metrics, suspects))
    return metrics


def review(cfg: AuditConfig, label_settings: dict[str, Any], suspects: list[dict[str, Any]], out: Path) -> dict[str, Any]:
    """Ask another teacher about the suspects only, as a label run of its own in out/review (cached as usual)."""
    from distill.config import LabelConfig, build
    from distill.label import label

    folder = out / "review"
    inputs = out / "review-input.jsonl"  # beside the review's run folder: label writes only into a folder it owns
    runs.write_jsonl(inputs, [{"text": s["text"]} for s in suspects])
    keep = {k: v for k, v in label_settings.items() if k in LabelConfig.model_fields}
    keep.update(input=str(inputs), text_column="text", gold=None, max_rows=None, dry_run=False, batch=False,
                teacher=cfg.review_teacher, teacher_model=cfg.review_teacher_model, base_url=cfg.base_url,
                endpoint=cfg.endpoint, max_cost=cfg.max_cost, price_in=cfg.price_in, price_out=cfg.price_out,
                # The suspects are the disputed rows, not a sample of the data: a batch mean over them is no baseline.
                calibration="none", cache=str(cfg.cache or label_settings.get("cache") or "") or None)
    for k in ("budget", "corrections"):
        keep.pop(k, None)
    m = label(build(LabelConfig, keep, "audit --review-teacher settings"), folder)
    answers = {r["text"]: r for r in read_records(folder)}
    changed = agrees = asked = 0
    for s in suspects:
        a = answers.get(s["text"]) or {}
        s["review_label"] = a.get("label")
        s["review_prob"] = None if a.get("confidence") is None else round(a["confidence"], 4)
        if a.get("label") is None:
            continue
        asked += 1
        s["review_changed"] = a["label"] != s["teacher_label"]
        changed += s["review_changed"]
        agrees += a["label"] == s["proxy_label"]
    return {"review_teacher": cfg.review_teacher, "reviewed": asked, "review_changed": changed,
            "review_agrees_with_proxy": agrees, "review_teacher_calls": m.get("teacher_calls"),
            "review_cost_usd": m.get("cost_usd")}


def _write_csv(path: Path, suspects: list[dict[str, Any]], labels: list[str]) -> None:
    """What a person corrects: fill `correct_label` (one of the labels) where the teacher was wrong, or to confirm."""
    extra = [k for k in ("review_label", "review_prob") if any(k in s for s in suspects)]
    with runs.atomic_open(path) as f:
        w = csv.writer(f)
        w.writerow([*SUSPECT_FIELDS, *extra, "correct_label"])
        for s in suspects:
            w.writerow([*(s.get(k) for k in SUSPECT_FIELDS), *(s.get(k) for k in extra), ""])


def _card(m: dict[str, Any], suspects: list[dict[str, Any]]) -> str:
    top = "\n".join(
        f"| {s['rank']} | {s['row']} | {' '.join(str(s['text']).split())[:100].replace('|', '/')} | {s['teacher_label']} "
        f"({s['teacher_prob']}) | {s['proxy_label']} ({s['proxy_prob']}) |"
        for s in suspects[:10]
    )
    review = ""
    if "reviewed" in m:
        review = (f"\nRe-asked {m['reviewed']} suspects to `{m['review_teacher']}`: it changed {m['review_changed']} "
                  f"answers ({m['review_agrees_with_proxy']} now agree with the proxy).\n")
    return f"""# Audit

{m['suspects']} of {m['rows_audited']} labeled texts ({m['suspect_share']:.1%}) are suspects: the proxy
({m['embedder']} embeddings + logistic regression, {m['folds']} folds, out-of-fold) averaged with the teacher's
own probabilities (weight {m['teacher_weight']}) confidently predicts another label for them. The proxy agrees
with the teacher on {m['proxy_agreement']:.1%} of the rows. {m['human_labels']} rows carry a person's label
and are never suspects.
{review}
| rank | row | text | teacher (prob) | proxy (prob) |
|---|---|---|---|---|
{top}

`suspects.jsonl`: every suspect, most suspect first. `suspects.csv`: the same with an empty `correct_label`
column; fill it in and pass the file back with `--corrections` (to `distill audit`, `distill label` or
`distill train`): a person's label then wins over the teacher's in every later run on this answer cache.
"""
