"""Read text from wherever the user keeps it into a `datasets.Dataset`.

Accepted: .csv, .tsv, .jsonl/.json, .parquet, .txt (one text per line), a folder saved with
`Dataset.save_to_disk`, or a hub dataset id (only for users with a hub; we are offline here).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from distill.errors import BadInput

if TYPE_CHECKING:
    from datasets import Dataset

SUFFIXES = {".csv": "csv", ".tsv": "csv", ".jsonl": "json", ".json": "json", ".parquet": "parquet"}


def load_table(source: str | Path) -> "Dataset":
    """Load any supported input as a Dataset; errors say what was expected."""
    import datasets

    datasets.disable_progress_bars()
    path = Path(source)
    if path.is_dir():
        try:
            ds = datasets.load_from_disk(str(path))
        except FileNotFoundError:
            raise BadInput(
                f"{path}: a folder, but not one saved with Dataset.save_to_disk. "
                "Point at a .csv, .jsonl, .parquet or .txt file instead."
            ) from None
        if isinstance(ds, datasets.DatasetDict):
            split = "train" if "train" in ds else next(iter(ds))
            ds = ds[split]
        return ds
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix == ".txt":
            lines = [ln.strip() for ln in path.read_text(encoding="utf-8-sig").splitlines()]
            return datasets.Dataset.from_dict({"text": [ln for ln in lines if ln]})
        if suffix not in SUFFIXES:
            raise BadInput(f"{path}: unsupported file type {suffix!r}; use .csv, .tsv, .jsonl, .parquet or .txt")
        kwargs = {"delimiter": "\t"} if suffix == ".tsv" else {}
        try:
            # keep_in_memory + no cache dir: a small input should not leave cache files next to the user's data.
            ds = datasets.load_dataset(
                SUFFIXES[suffix], data_files=str(path), split="train", keep_in_memory=True, **kwargs
            )
        except Exception as e:  # pyarrow/pandas parse errors come in many types
            if len([ln for ln in path.read_text(encoding="utf-8-sig", errors="replace").splitlines() if ln.strip()]) <= 1:
                raise BadInput(f"{path}: the input has no rows") from None
            raise BadInput(f"{path}: could not read it as {suffix} ({type(e).__name__}: {e})") from None
        return ds
    if looks_like_hub_id(str(source)):
        try:
            return datasets.load_dataset(str(source), split="train")
        except Exception as e:
            raise BadInput(
                f"{source}: not a local file, and loading it from the hub failed ({type(e).__name__}). "
                "Offline? Save the data as .csv/.jsonl/.parquet and pass the file."
            ) from None
    raise BadInput(f"{source}: no such file or folder")


def looks_like_hub_id(s: str) -> bool:
    parts = s.split("/")
    return len(parts) == 2 and all(parts) and not any(c in s for c in " \\:") and "." not in parts[0][:1]


def pick_text_column(ds: "Dataset", name: str | None) -> str:
    """The column that holds the text: the named one, else "text", else the only string column."""
    cols = list(ds.column_names)
    if name:
        if name not in cols:
            raise BadInput(f"unknown column {name!r}; the input has columns {cols}. Pass --text-column with one of them.")
        return name
    if "text" in cols:
        return "text"
    string_cols = [c for c in cols if getattr(ds.features[c], "dtype", None) in ("string", "large_string")]
    if len(string_cols) == 1:
        return string_cols[0]
    raise BadInput(f"which column holds the text? The input has columns {cols}. Pass --text-column NAME.")


def require_column(ds: "Dataset", name: str, flag: str) -> None:
    if name not in ds.column_names:
        raise BadInput(f"unknown column {name!r}; the input has columns {list(ds.column_names)}. Pass {flag} with one of them.")


def load_texts(source: str | Path, text_column: str | None = None) -> list[str]:
    """All texts of an input, as strings, in order. Empty input is an error."""
    ds = load_table(source)
    col = pick_text_column(ds, text_column)
    texts = ["" if t is None else str(t) for t in ds[col]]
    if not texts:
        raise BadInput(f"{source}: the input has no rows")
    return texts


def read_gold(path: str, labels: list[str], text_column: str, label_column: str, column_flags: bool = True) -> tuple[list[str], list[int]]:
    """Texts with true labels; every label must be one of the label set. column_flags: whether the command
    has --text-column/--label-column to point at other columns (train does; label reads `text` and `label`)."""
    ds = load_table(path)
    for name, what in ((text_column, "text"), (label_column, "label")):
        if name not in ds.column_names:
            fix = f"pass --{what}-column with one of them" if column_flags else f"name its {what} column {name!r}"
            raise BadInput(f"--gold {path}: no column {name!r}; it has {list(ds.column_names)}: {fix}.")
    gold = [(str(t), str(lab).strip()) for t, lab in zip(ds[text_column], ds[label_column]) if t is not None]
    unknown = sorted({lab for _, lab in gold if lab not in labels})
    if unknown:
        raise BadInput(f"--gold {path}: labels {unknown[:10]} are not in the label set {labels}; "
                       "rename them or drop those rows.")
    if not gold:
        raise BadInput(f"--gold {path}: no rows")
    return [t for t, _ in gold], [labels.index(lab) for _, lab in gold]
