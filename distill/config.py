"""Typed configs for every stage. YAML (recipes) and CLI flags in, JSON (config.json) out.

One pydantic model per stage; a recipe is one section per stage. `extra="forbid"` makes a typo in a
recipe an error that names the key instead of a setting silently ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from distill.errors import BadInput


class _Config(BaseModel):
    # Each field's docstring is its description: the help of its CLI flag (distill/flags.py).
    model_config = ConfigDict(extra="forbid", validate_assignment=True, use_attribute_docstrings=True)

    def resolved(self) -> dict[str, Any]:
        """Settings as JSON-able data, for config.json and the settings hash."""
        return self.model_dump(mode="json")


class Example(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str
    label: str


class LabelConfig(_Config):
    """`distill label`: ask a teacher for a label (and a probability per label) for every text."""

    input: str | None = None
    """csv / jsonl / parquet / txt file, a saved datasets folder, or a hub id."""
    text_column: str | None = None
    """Column holding the text (default: the only column, or one named "text")."""
    gold: str | None = None
    """Texts with true labels (text,label): also labeled, kept apart in gold.jsonl (never in labels.jsonl), and the teacher scored on them."""
    labels: list[str] = Field(default_factory=list)
    """The labels, e.g. positive,negative."""
    label_descriptions: dict[str, str] = Field(default_factory=dict)
    """label -> what it means, for the prompt (a recipe mapping; or descriptions in --labels-file)."""
    labels_file: str | None = None
    """Labels with descriptions (.yaml/.json/.csv/.txt)."""
    instructions: str | None = None
    """The task sentence at the top of the prompt (default: derived from the labels)."""
    examples: list[Example] = Field(default_factory=list)
    """Few-shot examples as text/label pairs (a recipe list; or --examples-file)."""
    examples_file: str | None = None
    """Few-shot examples file with text,label."""
    teacher: str = "local"
    """'local' (embedded llama.cpp) or a model name on --base-url."""
    teacher_model: str | None = None
    """GGUF file for --teacher local (default: Gemma 3 270M)."""
    base_url: str | None = None
    """OpenAI-compatible URL (default: $OPENAI_BASE_URL, else OpenAI)."""
    endpoint: Literal["auto", "completions", "chat"] = "auto"
    """auto | completions | chat."""
    concurrency: int = Field(8, ge=1, le=1024)
    """Requests in flight."""
    timeout: float | None = Field(None, gt=0)
    """Seconds per request (default: 60; 600 for the embedded teacher)."""
    max_retries: int = Field(6, ge=0)
    """Retries per request on 429/5xx/timeouts."""
    max_rows: int | None = Field(None, ge=1)
    """Label only the first N rows."""
    max_text_chars: int = Field(4000, ge=16)
    """Longer texts are truncated and counted."""
    # Why "batch" is the default: distill/label/stage.py (_batch_baseline) has the measurement.
    calibration: Literal["batch", "content-free", "none"] = "batch"
    """batch | content-free | none: how label probabilities are de-biased; batch divides by the mean over this run's texts, content-free by the answer for "N/A"."""
    low_confidence: float = Field(0.6, gt=0, le=1)
    """Rows whose top probability is below this count as unsure."""
    dry_run: bool = False
    """Print rows, tokens and cost; call nothing."""
    max_cost: float | None = Field(None, ge=0)
    """Stop before spending more than this many USD."""
    price_in: float | None = Field(None, ge=0)
    """USD per 1M prompt tokens, for models not in the price table."""
    price_out: float | None = Field(None, ge=0)
    """USD per 1M completion tokens."""
    batch: bool = False
    """Use the OpenAI Batch API (half price, resumable)."""
    batch_poll_seconds: float = Field(30.0, gt=0)
    """How often to poll a batch, in seconds."""
    cache: str | None = None
    """Answer cache (SQLite) path (default: $DISTILL_CACHE, else ~/.cache/distill/teacher.sqlite)."""
    reuse_answers_from: str | None = None
    """Use cached answers given at this base URL (the same model, moved); answers are otherwise keyed by model name and URL."""
    threads: int | None = None
    """CPU threads for the embedded teacher (default: all cores)."""
    corrections: str | None = None
    """A person's labels (text + correct_label or label): stored in the cache, they win over the teacher's, in this and every later run."""
    # Active labeling (distill/audit/active.py): ask the teacher about `budget` rows only, chosen in rounds.
    budget: int | None = Field(None, ge=1)
    """Ask the teacher about N rows only, chosen in rounds (active labeling); the rest is kept unlabeled."""
    seed_rows: int | None = Field(None, ge=1)
    """With --budget: rows in the first, random round (default: budget/5, at least 20)."""
    round_rows: int | None = Field(None, ge=1)
    """With --budget: rows per later round (default: budget/10, at least 10)."""
    active: bool = False
    """Choose rows in rounds without a row budget: until --max-cost is spent or every row is asked."""
    selection: Literal["active", "random"] = "active"
    """With --budget: active (the proxy's least-sure, diverse rows) | random."""
    selection_seed: int = 0
    """With --budget: seed of the random choices."""
    selection_embedder: str = "minilm"
    """With --budget: whose frozen embeddings the proxy that chooses the rows reads."""

    @field_validator("labels")
    @classmethod
    def _labels_ok(cls, v: list[str]) -> list[str]:
        v = [s.strip() for s in v if s.strip()]
        dupes = sorted({s for s in v if v.count(s) > 1})
        if dupes:
            raise ValueError(f"duplicate labels {dupes}; each label must appear once")
        return v


class AuditConfig(_Config):
    """`distill audit`: the teacher labels a proxy disagrees with, confidently (distill/audit/)."""

    label_run: str | None = None
    """A finished label run (or a train run trained on one)."""
    folds: int = Field(5, ge=2, le=20)
    """Folds of the out-of-fold proxy."""
    embedder: str = "minilm"
    """Whose frozen embeddings the proxy's logistic regression reads."""
    teacher_weight: float = Field(0.75, ge=0, le=1)
    """Weight of the teacher's own probabilities in the score, 0-1."""
    seed: int = 0
    """Seed of the folds."""
    corrections: str | None = None
    """suspects.csv with correct_label filled in (or text,label): stored; a person's label wins from now on."""
    cache: str | None = None
    """Answer cache (default: the label run's)."""
    review_teacher: str | None = None
    """Re-ask the top suspects to this model (cached as usual); records which answers changed."""
    review_teacher_model: str | None = None
    """GGUF file for --review-teacher local."""
    review_top: int = Field(100, ge=1)
    """How many top suspects to re-ask."""
    base_url: str | None = None
    """The review teacher's OpenAI-compatible URL."""
    endpoint: Literal["auto", "completions", "chat"] = "auto"
    """The review teacher's endpoint: auto | completions | chat."""
    max_cost: float | None = Field(None, ge=0)
    """Stop the review before spending more than this many USD."""
    price_in: float | None = Field(None, ge=0)
    """Review teacher: USD per 1M prompt tokens."""
    price_out: float | None = Field(None, ge=0)
    """Review teacher: USD per 1M completion tokens."""


class TrainConfig(_Config):
    """`distill train`: fine-tune a small student on labeled text."""

    data: str | None = None
    """A finished label run folder, or a labeled .csv/.jsonl/.parquet file."""
    student: str = "auto"
    """auto (mpnet on a GPU or for up to 2,000 training rows, minilm beyond), minilm, mpnet, qwen0.5b (see
    `distill students`; installed on first use), a local model folder, or a hub id."""
    text_column: str = "text"
    """Text column of a labeled file / the gold file."""
    label_column: str = "label"
    """Label column of a labeled file / the gold file."""
    gold: str | None = None
    """Texts with true labels: student (and teacher) accuracy on them."""
    corrections: str | None = None
    """A person's labels (text + correct_label or label): they win over the teacher's."""
    epochs: float | None = Field(None, gt=0)
    """Passes over the data (default: derived from the data size)."""
    learning_rate: float = Field(5e-5, gt=0)
    """Peak learning rate."""
    batch_size: int = Field(16, ge=1)
    """Rows per step per device."""
    # On by default since seeds 0-2 of benchmarks/training.py: 1.37-1.62x samples/s, test accuracy 80.4/80.2/80.5
    # against 80.8/79.4/80.3 with shuffled batches (README, Training speed).
    length_grouped: bool = True
    """Batches of similar-length texts, each padded to its own longest: ~40% fewer tokens per step on short sentences."""
    max_length: int = Field(128, ge=8)
    """Tokens per text; longer texts are cut."""
    loss: Literal["auto", "kd", "ce"] = "auto"
    """auto | kd | ce; auto: kd when the teacher gave probabilities."""
    temperature: float = Field(2.0, gt=0)
    """Distillation temperature."""
    alpha: float = Field(0.5, ge=0, le=1)
    """Weight of the distillation term; 1-alpha on cross-entropy."""
    min_confidence: float | None = Field(None, ge=0, le=1)
    """Leave out rows the teacher was less sure of."""
    # distill/train/denoise.py. 0.5 from Pang & Lee (README, Quality): mpnet 87.0 +- 0.3% over seeds 0-2 against
    # 85.5 +- 0.1% with the teacher's labels alone (teacher 85.5%); the restaurant recipe sets 0.3 (its own rows).
    proxy_weight: float = Field(0.5, ge=0, lt=1)
    """Mix this share of a second opinion into the teacher's probabilities before training: logistic regression on
    the student body's frozen embeddings, out of fold. 0: the teacher's alone."""
    val_fraction: float = Field(0.15, gt=0, lt=1)
    """Share held out for validation."""
    val_max_rows: int = Field(2000, ge=1)
    """At most this many validation rows, so evaluation stays cheap on big data."""
    seed: int = 0
    """Seed for the split and the training."""
    max_steps: int | None = Field(None, ge=1)
    """Stop after this many optimizer steps."""
    early_stopping_patience: int = Field(3, ge=1)
    """Evaluations without improvement before stopping."""
    warmup_ratio: float | None = Field(None, ge=0, lt=1)
    """Warm-up share of the steps (default: derived: 10%, at most 500 steps)."""
    eval_steps: int | None = Field(None, ge=1)
    """Steps between evaluations (default: derived from the data size)."""
    class_balance: Literal["weight", "none"] = "weight"
    """weight (a class-weighted loss) | none."""
    # Fewer layers to compute backwards: what makes mpnet affordable on a CPU.
    freeze_layers: int = Field(0, ge=0)
    """Keep the embeddings and the lowest N transformer layers as pretrained."""
    reinit_layers: int = Field(0, ge=0)
    """Start the top N transformer layers (and BERT's pooler) from fresh weights."""
    # Self-training (distill/train/self_training.py). In a recipe: label.input beyond label.max_rows.
    unlabeled: str | None = None
    """Texts the teacher did not label: the student labels them and trains again (self-training)."""
    unlabeled_text_column: str | None = None
    """Column of --unlabeled holding the text (default: the only column, or one named "text")."""
    unlabeled_max_rows: int | None = Field(None, ge=1)
    """Read at most this many --unlabeled texts."""
    self_training_rounds: int = Field(1, ge=0)
    """Self-training rounds with --unlabeled."""
    # A share, not a fixed probability: a student distilled on a calibrated teacher's soft labels is rarely above
    # 0.9 (mpnet on Pang & Lee kept 0 of 2,000 texts at 0.9), so a fixed bar silently turned self-training off.
    self_training_keep: float = Field(0.5, gt=0, le=1)
    """Share of the --unlabeled texts kept per round: those the student is surest of, in the teacher's class shares."""
    self_training_threshold: float | None = Field(None, gt=0, le=1)
    """Also require this top probability of a kept text (none: no floor)."""
    self_training_tolerance: float | None = Field(None, ge=0, le=1)
    """Keep the latest round whose validation score is at most this far below the best; none: one standard error."""
    self_training_epochs: float | None = Field(1.0, gt=0)
    """Passes per self-training round over the teacher's and the kept rows; none: derived from the data size."""
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    """auto | fp32 | bf16 | fp16; auto: bf16/fp16 on GPU, fp32 on CPU."""
    resume: bool = False
    """Continue an interrupted run from its last checkpoint."""
    trust_remote_code: bool = False
    """Allow the student's own code."""
    # Every projection plus the full head, merged back into a plain model at the end (distill/train/lora.py):
    # for the 0.5B decoder on CPU, about 2/3 of the time and half the memory.
    lora: bool = False
    """Train LoRA adapters (merged back at the end): less time and memory for big students."""
    lora_rank: int = Field(8, ge=1)
    """LoRA rank with --lora."""


class ExportConfig(_Config):
    """`distill export --onnx`: one verified, quantized ONNX model and what an app needs around it."""

    model: str | None = None
    """A finished train run folder (with model/ and val.jsonl)."""
    quantize: Literal["int8", "none"] = "int8"
    """int8 or none; the fp32 model.onnx is always kept."""
    target: Literal["avx2", "avx512", "arm64"] = "avx2"
    """int8 preset: avx2, avx512 or arm64 (phones)."""
    with_tokenizer: bool = False
    """Also write model.with_tokenizer.onnx (text in)."""
    ort: bool = False
    """Also write .ort files + operator config for onnxruntime mobile."""
    optimize: bool = True
    """Try ONNX Runtime's transformer fusions; kept only if faster."""
    atol: float = Field(1e-4, gt=0)
    """Max |logit difference| ONNX fp32 vs PyTorch."""
    max_accuracy_drop: float = Field(1.0, ge=0)
    """Max int8 accuracy loss in points."""
    opset: int | None = None
    """ONNX opset (default: the exporter's choice)."""
    max_length: int | None = Field(None, ge=8)
    """Tokens per text (default: the train run's max_length)."""
    latency_texts: int = Field(64, ge=1)
    """Texts timed per engine (cycled when the validation split is smaller)."""
    threads: int | None = Field(None, ge=1)
    """Threads for every engine in the timings (default: torch's)."""


class PipelineConfig(_Config):
    """A recipe: `distill run pipelines/X.yaml` chains label -> train -> export.

    Each stage writes `<artifacts>/<name>/<stage>/`; train.data and export.model are wired to the previous
    stage's folder unless the recipe sets them.
    """

    name: str  # also the folder name under artifacts/
    description: str = ""
    artifacts: str = "artifacts"
    label: LabelConfig
    audit: AuditConfig | None = None  # present: `distill audit` runs on the label stage's output, before train
    train: TrainConfig = Field(default_factory=TrainConfig)
    export: ExportConfig = Field(default_factory=ExportConfig)

    @field_validator("name")
    @classmethod
    def _name_ok(cls, v: str) -> str:
        import re

        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", v):
            raise ValueError(f"{v!r}: use letters, digits, '.', '_' or '-' (it names the folder under artifacts/)")
        return v

    @model_validator(mode="after")
    def _chain_is_runnable(self) -> "PipelineConfig":
        # Raised with the key's own location so the message reads `label.input: ...`, not `(top level): ...`.
        problems = []
        if not self.label.input:
            problems.append((("label", "input"), "the recipe must name the texts to label"))
        if not self.label.labels_file and len(self.label.labels) < 2:
            problems.append((("label", "labels"), "needs at least two (e.g. labels: [negative, positive]), or a labels_file"))
        if problems:
            from pydantic import ValidationError
            from pydantic_core import InitErrorDetails, PydanticCustomError

            raise ValidationError.from_exception_data(
                "PipelineConfig",
                [InitErrorDetails(type=PydanticCustomError("value_error", msg), loc=loc, input=None) for loc, msg in problems],
            )
        return self


def format_validation_error(err: Exception, source: str) -> str:
    """pydantic's multi-line report -> one line per problem that points at the key: `train.lr: ...`."""
    errors = getattr(err, "errors", None)
    if not callable(errors):
        return f"{source}: {err}"
    parts = []
    for e in errors():
        where = ".".join(str(p) for p in e.get("loc", ())) or "(top level)"
        msg = e.get("msg", "invalid").removeprefix("Value error, ")
        if e.get("type") == "extra_forbidden":
            msg = "unknown key (check the spelling; see `distill <stage> --help` for the settings)"
        parts.append(f"{where}: {msg}")
    return f"{source}: " + "; ".join(parts)


def load_yaml(path: str | Path) -> dict[str, Any]:
    import yaml

    p = Path(path)
    if not p.is_file():
        raise BadInput(f"{p}: no such recipe file")
    try:
        from distill.textfile import read_utf8

        data = yaml.safe_load(read_utf8(p))
    except yaml.YAMLError as e:
        raise BadInput(f"{p}: not valid YAML ({e})") from None
    if not isinstance(data, dict):
        raise BadInput(f"{p}: a recipe is a mapping with sections label/train/export")
    return data


def apply_sets(data: dict[str, Any], sets: list[str]) -> dict[str, Any]:
    """`--set train.epochs=3`: the value is read as a YAML scalar (3 -> int, true -> bool, [a, b] -> list)."""
    import yaml

    for item in sets:
        key, sep, raw = item.partition("=")
        parts = [p.strip() for p in key.split(".")]
        if not sep or not all(parts):
            raise BadInput(f"--set {item!r}: expected STAGE.KEY=VALUE, for example --set train.epochs=3")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            raise BadInput(f"--set {item!r}: {raw!r} is not a valid YAML value; quote it, e.g. '{key}=\"{raw}\"'") from None
        node = data
        for i, part in enumerate(parts[:-1]):
            if node.get(part) is None:
                node[part] = {}
            node = node[part]
            if not isinstance(node, dict):
                raise BadInput(f"--set {item!r}: {'.'.join(parts[: i + 1])} is a value, not a section")
        node[parts[-1]] = value
    return data


def build(model: type[_Config], data: dict[str, Any], source: str) -> Any:
    """Validate `data` into `model`, turning pydantic's error into a BadInput that names the key."""
    from pydantic import ValidationError

    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise BadInput(format_validation_error(e, source)) from None
