"""Prompt building and answer parsing. Pure functions: no I/O, easy to test.

Labels are *scored*, not free-generated: we ask for one next token after a few-shot prompt and read the
top log-probabilities. Each label is matched by the first token it would start with, so every row gets a
probability per label. Free-text generation with a small teacher is near chance (docs/facts.md), logprob
scoring is not.

The fixed part (instructions, label descriptions, examples) comes first and the text last, so that
providers' prompt caching (and llama.cpp's KV-cache reuse) apply to the shared prefix.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Sequence

from distill.errors import BadInput

# Bumped whenever the rendered prompt changes shape: it is part of every cache key.
TEMPLATE_VERSION = "v1"
CONTENT_FREE_TEXT = "N/A"  # contextual calibration input (Zhao et al., 2021)


@dataclass(frozen=True)
class Task:
    """Everything fixed across rows: what the teacher is asked and how answers are read."""

    labels: tuple[str, ...]
    descriptions: dict[str, str] = field(default_factory=dict)
    instructions: str | None = None
    examples: tuple[tuple[str, str], ...] = ()  # (text, label)
    max_text_chars: int = 4000

    def __post_init__(self) -> None:
        check_labels(self.labels)
        unknown = sorted({lab for _, lab in self.examples if lab not in self.labels})
        if unknown:
            raise BadInput(f"examples use labels {unknown} that are not in the label set {list(self.labels)}")

    @property
    def instruction_text(self) -> str:
        if self.instructions:
            return self.instructions.strip()
        return "Classify the text into exactly one of the labels."


def check_labels(labels: Sequence[str]) -> None:
    """Scoring reads one next token, so labels must be distinct single words with distinct starts."""
    if len(labels) < 2:
        raise BadInput(f"need at least two labels, got {list(labels)}; pass --labels a,b")
    seen: set[str] = set()
    for lab in labels:
        key = lab.lower()
        if key in seen:
            raise BadInput(f"duplicate label {lab!r}; each label must appear once")
        seen.add(key)
        clash = [o for o in labels if o != lab and o.lower().startswith(key)]
        if clash and key:
            raise BadInput(
                f"labels {lab!r} and {clash[0]!r}: one starts the other, and the teacher is scored on the first "
                f"token of its answer, so the two cannot be told apart; rename one so that neither starts the other "
                f"(e.g. {lab!r} -> a different word)"
            )
        if not lab or any(c.isspace() for c in lab):
            fixed = "_".join(lab.split())
            raise BadInput(
                f"label {lab!r} is not a single word; the teacher is scored on its next token. "
                f"Use a single word such as {fixed!r} and put the longer wording in the label's description."
            )


def truncate(text: str, max_chars: int) -> tuple[str, bool]:
    """Cut an over-long text at a word boundary; the caller counts how many were cut."""
    if len(text) <= max_chars:
        return text, False
    cut = text[:max_chars]
    space = cut.rfind(" ")
    return (cut[:space] if space > max_chars * 0.8 else cut) + " ...", True


def _label_block(task: Task) -> str:
    lines = ["Labels:"]
    for lab in task.labels:
        desc = task.descriptions.get(lab)
        lines.append(f"- {lab}: {desc}" if desc else f"- {lab}")
    return "\n".join(lines)


def completion_prompt(task: Task, text: str) -> str:
    """A plain few-shot prompt for the completions endpoint (base models, llama.cpp, vLLM)."""
    return completion_prefix(task) + f"Text: {_one_line(text)}\nLabel:"


def completion_prefix(task: Task) -> str:
    """The part of every completion prompt before the text: instructions, labels and examples."""
    parts = [task.instruction_text, _label_block(task), ""]
    for ex_text, ex_label in task.examples:
        parts.append(f"Text: {_one_line(ex_text)}\nLabel: {ex_label}\n")
    return "\n".join(parts) + "\n"


def chat_messages(task: Task, text: str, json_mode: bool = False) -> list[dict[str, str]]:
    """Chat messages: the fixed system prompt and examples as turns first, the text last."""
    answer_rule = (
        'Answer with JSON: {"label": "<one of the labels>"}.'
        if json_mode
        else "Answer with the label only: one word, exactly as written above."
    )
    system = f"{task.instruction_text}\n{_label_block(task)}\n{answer_rule}"
    messages = [{"role": "system", "content": system}]
    for ex_text, ex_label in task.examples:
        messages.append({"role": "user", "content": ex_text})
        messages.append({"role": "assistant", "content": json.dumps({"label": ex_label}) if json_mode else ex_label})
    messages.append({"role": "user", "content": text})
    return messages


def json_schema(task: Task) -> dict[str, Any]:
    """The constrained-output fallback for servers that give no logprobs."""
    return {
        "type": "json_schema",
        "json_schema": {
            "name": "label",
            "strict": True,
            "schema": {
                "type": "object",
                "properties": {"label": {"type": "string", "enum": list(task.labels)}},
                "required": ["label"],
                "additionalProperties": False,
            },
        },
    }


def _one_line(text: str) -> str:
    # Newlines inside a text would look like the end of the example to a base model.
    return " ".join(text.split())


# --- parsing ------------------------------------------------------------------------------------------


@dataclass
class Parsed:
    label: str | None
    probs: dict[str, float] | None
    source: str  # "logprobs" | "json" | "text" (a hard label: a reply without logprobs that is exactly a label) | "invalid"


def top_logprobs(choice: dict[str, Any]) -> list[tuple[str, float]] | None:
    """The first generated token's alternatives, from either shape servers return.

    chat shape (OpenAI chat, llama.cpp completions): logprobs.content[0].top_logprobs[i].{token, logprob}
    legacy completions shape (OpenAI, vLLM):         logprobs.top_logprobs[0] = {token: logprob}
    """
    lp = choice.get("logprobs")
    if not isinstance(lp, dict):
        return None
    content = lp.get("content")
    if isinstance(content, list) and content:
        first = content[0] or {}
        tops = first.get("top_logprobs") or []
        out = [(t["token"], float(t["logprob"])) for t in tops if isinstance(t, dict) and "token" in t]
        if not out and "token" in first and "logprob" in first:
            out = [(first["token"], float(first["logprob"]))]
        return out or None
    legacy = lp.get("top_logprobs")
    if isinstance(legacy, list) and legacy and isinstance(legacy[0], dict):
        return [(tok, float(v)) for tok, v in legacy[0].items()] or None
    return None


def match_label(token: str, labels: Sequence[str]) -> str | None:
    """The label a generated token starts, or None when it starts none or is ambiguous.

    " positive", "Positive", "pos" all start `positive`; a bare space or "the" start nothing.
    """
    t = token.strip().strip('"').lower()
    if not t:
        return None
    hits = [lab for lab in labels if lab.lower().startswith(t)]
    return hits[0] if len(hits) == 1 else None


def probs_from_logprobs(tops: list[tuple[str, float]], labels: Sequence[str]) -> dict[str, float] | None:
    """Sum the probability mass of every token that starts each label, then renormalise over labels."""
    mass = {lab: 0.0 for lab in labels}
    for token, logprob in tops:
        lab = match_label(token, labels)
        if lab is not None and math.isfinite(logprob):
            mass[lab] += math.exp(logprob)
    total = sum(mass.values())
    if total <= 0:
        return None
    # A label absent from the top-k still gets a small floor, so KL against these targets stays finite.
    floor = min([m for m in mass.values() if m > 0] + [1e-4]) * 0.1
    mass = {lab: max(m, floor) for lab, m in mass.items()}
    total = sum(mass.values())
    return {lab: m / total for lab, m in mass.items()}


def batch_baseline(all_probs: list[dict[str, float]], labels: Sequence[str]) -> dict[str, float] | None:
    """The teacher's average probability per label over many texts (batch calibration, Zhou et al. 2023).

    A small teacher leans towards one label whatever the text (the last few-shot example's label, the
    more frequent word); on a roughly balanced set that lean shows up as this mean. Too few texts give a
    noisy mean, so below 10 per label there is no baseline.
    """
    if len(all_probs) < 10 * len(labels):
        return None
    return {lab: sum(p[lab] for p in all_probs) / len(all_probs) for lab in labels}


def calibrate(probs: dict[str, float], baseline: dict[str, float] | None) -> dict[str, float]:
    """Divide by the teacher's baseline probabilities (its bias), renormalise."""
    if not baseline:
        return probs
    scaled = {lab: p / max(baseline.get(lab, 1.0), 1e-6) for lab, p in probs.items()}
    total = sum(scaled.values())
    return {lab: v / total for lab, v in scaled.items()} if total > 0 else probs


def parse_json_label(text: str, labels: Sequence[str]) -> str | None:
    """{"label": "positive"} or "positive" (a JSON string) -> "positive"; anything else -> None.

    Unparseable answers are kept raw by the caller and marked invalid, never guessed.
    """
    try:
        obj = json.loads(text)
    except (TypeError, ValueError):
        return None
    value = obj.get("label") if isinstance(obj, dict) else obj
    if not isinstance(value, str):
        return None
    exact = [lab for lab in labels if lab.lower() == value.strip().lower()]
    return exact[0] if exact else None


def parse_answer(answer: dict[str, Any], labels: Sequence[str], baseline: dict[str, float] | None = None) -> Parsed:
    """A cached answer -> label + probabilities, or invalid.

    `answer` is what client.py stores: {"mode": "logprobs"|"json", "text": str, "top": [[tok, lp], ...] | None}.
    """
    if answer.get("mode") == "json":
        lab = parse_json_label(answer.get("text") or "", labels)
        return Parsed(lab, None, "json" if lab else "invalid")
    tops = answer.get("top")
    probs = probs_from_logprobs([(t, lp) for t, lp in tops], labels) if tops else None
    if probs is None:
        # A reply without logprobs whose text is exactly a label is that label, with no probabilities.
        text = (answer.get("text") or "").strip().strip('"').lower()
        exact = [lab for lab in labels if lab.lower() == text] if not tops else []
        return Parsed(exact[0], None, "text") if exact else Parsed(None, None, "invalid")
    probs = calibrate(probs, baseline)
    label = max(probs, key=probs.__getitem__)
    return Parsed(label, probs, "logprobs")
