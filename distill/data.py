"""Read text from wherever the user keeps it into a `datasets.Dataset`.

Accepted: .csv, .tsv, .jsonl/.json, .parquet, .txt (one text per line), a folder saved with
`Dataset.save_to_disk`, or a hub dataset id (only for users with a hub; we are offline here).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from distill.errors import BadInput
from distill.textfile import check_utf8, read_utf8

if TYPE_CHECKING:
    from datasets import Dataset

SUFFIXES = {".csv": "csv", ".tsv": "csv", ".jsonl": "json", ".json": "json", ".parquet": "parquet"}


def load_table(source: str | Path, allow_hub: bool = True) -> "Dataset":
    """Load any supported input as a Dataset; errors say what was expected. A name that looks like a path
    (a known extension, a leading . / or ~, a first part that exists here) is never looked up on the hub."""
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
            lines = [ln.strip() for ln in read_utf8(path).splitlines()]
            return datasets.Dataset.from_dict({"text": [ln for ln in lines if ln]})
        if suffix not in SUFFIXES:
            raise BadInput(f"{path}: unsupported file type {suffix!r}; use .csv, .tsv, .jsonl, .parquet or .txt")
        if suffix != ".parquet":
            check_utf8(path)  # otherwise the parser's own error names the cause only in a log line
        if suffix in (".jsonl", ".json"):
            rows = read_json_rows(path)
            if rows is not None:
                try:
                    return datasets.Dataset.from_list(rows) if rows else datasets.Dataset.from_dict({})
                except Exception as e:  # pyarrow: one column, values of several types
                    raise BadInput(f"{path}: a field holds values of different types ({' '.join(str(e).split())[:120]}); "
                                   "give each field one type (every text a string)") from None
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
    if allow_hub and looks_like_hub_id(str(source)):
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
    if len(parts) != 2 or not all(parts) or any(c in s for c in " \\:") or s[:1] in "./~":
        return False
    known = tuple(SUFFIXES) + (".txt", ".json", ".yaml", ".yml", ".gz", ".bz2", ".zip")
    return not s.lower().endswith(known) and not Path(parts[0]).exists()


def read_json_rows(path: Path) -> list[dict] | None:
    """A .jsonl file read with json itself, so each value keeps its type (a null stays None, an object stays
    an object) instead of being cast by a table reader. None for a .json file that is not JSON lines."""
    import json

    rows = []
    for n, line in enumerate(read_utf8(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as e:
            if path.suffix.lower() == ".json":
                return None
            raise BadInput(f"{path}:{n}: not valid JSON ({e}); each line must be one JSON object") from None
        if not isinstance(row, dict):
            raise BadInput(f"{path}:{n}: each line must be a JSON object such as {{\"text\": \"...\"}}")
        rows.append(row)
    return rows


def pick_text_column(ds: "Dataset", name: str | None) -> str:
    """The column that holds the text: the named one, else "text", else the only string column (said on
    stderr: a guess the user should see)."""
    cols = list(ds.column_names)
    if name:
        if name not in cols:
            raise BadInput(f"unknown column {name!r}; the input has columns {cols}. Pass --text-column with one of them.")
        return name
    if "text" in cols:
        return "text"
    string_cols = [c for c in cols if getattr(ds.features[c], "dtype", None) in ("string", "large_string")]
    if len(string_cols) == 1:
        import sys

        sys.stderr.write(f"note: no `text` column; using {string_cols[0]!r}, the only text column "
                         f"(columns: {cols}). Pass --text-column to choose.\n")
        return string_cols[0]
    raise BadInput(f"which column holds the text? The input has columns {cols}. Pass --text-column NAME.")


def require_column(ds: "Dataset", name: str, flag: str) -> None:
    if name not in ds.column_names:
        raise BadInput(f"unknown column {name!r}; the input has columns {list(ds.column_names)}. Pass {flag} with one of them.")


def text_or_reason(value: Any) -> tuple[str | None, str | None]:
    """(text, None) for a usable text, (None, why) for a row that must not be sent to the teacher."""
    if value is None:
        return None, "missing or null"
    if not isinstance(value, str):
        return None, f"not a string ({type(value).__name__})"
    if not value.strip():
        return None, "empty"
    return value, None


def load_texts_and_skips(source: str | Path, text_column: str | None = None) -> tuple[list[str | None], list[str | None]]:
    """All texts of an input in order, None where a row has no usable text; and per row why (None: usable)."""
    path = Path(source)
    rows = read_json_rows(path) if path.is_file() and path.suffix.lower() in (".jsonl", ".json") else None
    if rows is not None:  # read as written: a table reader would cast a null or an object to a string
        values = [row.get(_json_text_column(path, rows, text_column)) for row in rows]
    else:
        ds = load_table(source)
        values = ds[pick_text_column(ds, text_column)] if len(ds) else []
    if not values:
        raise BadInput(f"{source}: the input has no rows")
    pairs = [text_or_reason(t) for t in values]
    return [t for t, _ in pairs], [why for _, why in pairs]


def _json_text_column(path: Path, rows: list[dict], name: str | None) -> str:
    cols = list(dict.fromkeys(k for row in rows for k in row))
    if name or "text" in cols:
        if (name or "text") not in cols:
            raise BadInput(f"unknown column {name!r}; the input has columns {cols}. Pass --text-column with one of them.")
        return name or "text"
    strings = [c for c in cols if all(isinstance(row.get(c), str) for row in rows if row.get(c) is not None)]
    if len(strings) == 1:
        import sys

        sys.stderr.write(f"note: no `text` field; using {strings[0]!r}, the only text field (fields: {cols}). "
                         "Pass --text-column to choose.\n")
        return strings[0]
    raise BadInput(f"{path}: which field holds the text? The rows have fields {cols}. Pass --text-column NAME.")


def load_texts(source: str | Path, text_column: str | None = None) -> list[str]:
    """The usable texts of an input, in order (rows without one left out)."""
    return [t for t in load_texts_and_skips(source, text_column)[0] if t is not None]


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
