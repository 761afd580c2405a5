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
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    def resolved(self) -> dict[str, Any]:
        """Settings as JSON-able data, for config.json and the settings hash."""
        return self.model_dump(mode="json")


class Example(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str
    label: str


class LabelConfig(_Config):
    """`distill label`: ask a teacher for a label (and a probability per label) for every text."""

    input: str | None = None  # csv / jsonl / parquet / txt file, a saved datasets folder, or a hub id
    text_column: str | None = None  # None: the only column, or one named "text"
    # Texts with true labels (text + label columns): the teacher labels them too, apart from the input (they
    # go to gold.jsonl, never to labels.jsonl), and the run reports the teacher's accuracy on them.
    gold: str | None = None
    labels: list[str] = Field(default_factory=list)
    label_descriptions: dict[str, str] = Field(default_factory=dict)
    labels_file: str | None = None  # yaml/json/csv/txt with a description per label
    instructions: str | None = None  # the task sentence at the top of the prompt; a default is derived
    examples: list[Example] = Field(default_factory=list)
    examples_file: str | None = None  # csv / jsonl with text,label
    teacher: str = "local"  # "local" (embedded llama.cpp) or a model name on an OpenAI-compatible endpoint
    teacher_model: str | None = None  # GGUF path for the local teacher; default Gemma 3 270M
    base_url: str | None = None  # default: OPENAI_BASE_URL, else OpenAI
    endpoint: Literal["auto", "completions", "chat"] = "auto"
    concurrency: int = Field(8, ge=1, le=1024)
    timeout: float | None = Field(None, gt=0)  # seconds per request; None: 60 remote, 600 local (see label.py)
    max_retries: int = Field(6, ge=0)
    max_rows: int | None = Field(None, ge=1)
    max_text_chars: int = Field(4000, ge=16)  # longer texts are truncated and counted
    # How the teacher's label probabilities are corrected for its bias (label.py says why "batch" is the default):
    # batch: divide by the mean probability over this run's texts; content-free: by the answer for "N/A".
    calibration: Literal["batch", "content-free", "none"] = "batch"
    low_confidence: float = Field(0.6, gt=0, le=1)  # rows whose top probability is below this are "unsure"
    dry_run: bool = False
    max_cost: float | None = Field(None, ge=0)
    price_in: float | None = Field(None, ge=0)  # USD per 1M prompt tokens
    price_out: float | None = Field(None, ge=0)  # USD per 1M completion tokens
    batch: bool = False  # OpenAI Batch API
    batch_poll_seconds: float = Field(30.0, gt=0)
    cache: str | None = None  # SQLite cache path; default ~/.cache/distill/teacher.sqlite or $DISTILL_CACHE
    threads: int | None = None  # llama.cpp threads for the local teacher; default: all cores
    # A person's labels (text + correct_label/label columns): stored in the cache, they win in every later run.
    corrections: str | None = None
    # Active labeling (distill/audit/active.py): ask the teacher about `budget` rows only, chosen in rounds.
    budget: int | None = Field(None, ge=1)
    seed_rows: int | None = Field(None, ge=1)  # the first, random round; default budget // 5 (at least 20)
    round_rows: int | None = Field(None, ge=1)  # rows per later round; default budget // 10 (at least 10)
    active: bool = False  # rounds without a row budget: until --max-cost is spent or every row is asked
    selection: Literal["active", "random"] = "active"
    selection_seed: int = 0
    selection_embedder: str = "minilm"  # whose frozen embeddings the proxy that chooses the rows reads

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

    label_run: str | None = None  # a finished label run (or a train run trained on one)
    folds: int = Field(5, ge=2, le=20)
    embedder: str = "minilm"  # whose frozen embeddings the proxy's logistic regression reads
    teacher_weight: float = Field(0.5, ge=0, le=1)  # weight of the teacher's own probabilities in the score
    seed: int = 0
    corrections: str | None = None  # a person's labels (suspects.csv with correct_label filled in)
    cache: str | None = None  # answer cache; default: the label run's
    review_teacher: str | None = None  # re-ask the top suspects to this model
    review_teacher_model: str | None = None  # GGUF for --review-teacher local
    review_top: int = Field(100, ge=1)
    base_url: str | None = None  # the review teacher's endpoint
    endpoint: Literal["auto", "completions", "chat"] = "auto"
    max_cost: float | None = Field(None, ge=0)
    price_in: float | None = Field(None, ge=0)
    price_out: float | None = Field(None, ge=0)


class TrainConfig(_Config):
    """`distill train`: fine-tune a small student on labeled text."""

    data: str | None = None  # a finished label run folder, or a labeled csv/jsonl/parquet file
    student: str = "minilm"  # alias, local folder, or hub id
    text_column: str = "text"
    label_column: str = "label"
    gold: str | None = None  # file of texts with true labels, for student-vs-teacher accuracy
    corrections: str | None = None  # a person's labels (text + correct_label/label): they win over the teacher's
    epochs: float | None = Field(None, gt=0)  # None: derived from the data size
    learning_rate: float = Field(5e-5, gt=0)
    batch_size: int = Field(16, ge=1)
    max_length: int = Field(128, ge=8)
    loss: Literal["auto", "kd", "ce"] = "auto"  # auto: kd when the teacher gave probabilities
    temperature: float = Field(2.0, gt=0)
    alpha: float = Field(0.5, ge=0, le=1)  # weight of the KD term; (1 - alpha) on cross-entropy
    min_confidence: float | None = Field(None, ge=0, le=1)
    val_fraction: float = Field(0.15, gt=0, lt=1)
    val_max_rows: int = Field(2000, ge=1)  # caps the validation split so evaluation stays cheap on big data
    seed: int = 0
    max_steps: int | None = Field(None, ge=1)  # stop after this many optimizer steps (smoke runs, benchmarks)
    early_stopping_patience: int = Field(3, ge=1)
    warmup_ratio: float | None = Field(None, ge=0, lt=1)
    eval_steps: int | None = Field(None, ge=1)
    class_balance: Literal["weight", "none"] = "weight"
    # Embeddings and the lowest N transformer layers stay as pretrained: less to compute backwards (mpnet on CPU).
    freeze_layers: int = Field(0, ge=0)
    # Self-training (distill/train/self_training.py): texts the teacher never labeled; the student labels them, keeps
    # the rows it is sure of and trains again, for this many rounds. In a recipe: label.input beyond label.max_rows.
    unlabeled: str | None = None
    unlabeled_text_column: str | None = None  # None: the only column, or one named "text"
    unlabeled_max_rows: int | None = Field(None, ge=1)
    self_training_rounds: int = Field(1, ge=0)
    self_training_threshold: float = Field(0.9, gt=0, le=1)  # the student's top probability needed to keep a row
    self_training_epochs: float | None = Field(1.0, gt=0)  # passes per round over teacher + kept rows; None: derived
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    resume: bool = False
    trust_remote_code: bool = False
    # Train LoRA adapters (rank lora_rank) on every projection plus the full head, merged back into a plain model
    # at the end (distill/train/lora.py): for the 0.5B decoder on CPU, about 2/3 of the time and half the memory.
    lora: bool = False
    lora_rank: int = Field(8, ge=1)


class ExportConfig(_Config):
    """`distill export --onnx`: one verified, quantized ONNX model and what an app needs around it."""

    model: str | None = None  # a finished train run folder
    quantize: Literal["int8", "none"] = "int8"
    target: Literal["avx2", "avx512", "arm64"] = "avx2"
    with_tokenizer: bool = False
    ort: bool = False
    optimize: bool = True  # ONNX Runtime transformer graph optimizations, kept only where they win
    atol: float = Field(1e-4, gt=0)
    max_accuracy_drop: float = Field(1.0, ge=0)  # points of accuracy
    opset: int | None = None
    max_length: int | None = Field(None, ge=8)  # None: the train run's max_length
    latency_texts: int = Field(64, ge=1)  # texts timed per engine (cycled when the validation split is smaller)
    threads: int | None = Field(None, ge=1)  # for every engine in the timings; None: torch's default


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
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise BadInput(f"{p}: not valid YAML ({e})") from None
    if not isinstance(data, dict):
        raise BadInput(f"{p}: a recipe is a mapping with sections label/train/export")
    return data


def build(model: type[_Config], data: dict[str, Any], source: str) -> Any:
    """Validate `data` into `model`, turning pydantic's error into a BadInput that names the key."""
    from pydantic import ValidationError

    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise BadInput(format_validation_error(e, source)) from None
