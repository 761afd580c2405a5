"""The onnxruntime-only predictor: what an edge service embeds to run an export folder.

    from distill.runtime import Predictor
    Predictor("artifacts/x/export").predict(["the soup was cold"])
    # -> [{"text": ..., "label": "negative", "probs": {"negative": 0.93, ...}, "truncated": False}]

Imports onnxruntime, numpy and `tokenizers` only: never torch or transformers (a test holds it to that);
its one import from distill is the error class in distill/errors.py, which imports nothing. So a service
needs `pip install onnxruntime tokenizers numpy` and these two modules. A
tokenizer-in-graph model (`model.with_tokenizer.onnx`) needs onnxruntime and the onnxruntime-extensions
shared library, found on disk without importing the package (its __init__ imports torch).
"""

from __future__ import annotations

import csv
import io
import importlib.util
import json
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from distill.errors import BadInput

LABELS_FILE = "labels.json"
# Session-time fusions that make this CPU path slower, not faster (measured: docs/facts.md, export speed).
SLOW_FUSIONS = ["SkipLayerNormFusion"]


def extensions_library() -> str:
    """Path of the onnxruntime-extensions custom-op library, without running the package's __init__."""
    spec = importlib.util.find_spec("onnxruntime_extensions")
    if spec is None or not spec.submodule_search_locations:
        raise BadInput(
            "this model has its tokenizer inside the graph and needs onnxruntime-extensions: "
            "`pip install onnxruntime-extensions`, or use model.int8.onnx / model.onnx with tokenizer.json"
        )
    for folder in spec.submodule_search_locations:
        libs = sorted(Path(folder).glob("_extensions_pydll*"))
        if libs:
            return str(libs[0])
    raise BadInput(f"onnxruntime-extensions is installed in {spec.submodule_search_locations} but has no custom-op library")


def session(path: Path, threads: int | None = None, custom_ops: bool = False, all_fusions: bool = False,
            profile_prefix: str | None = None) -> Any:
    """An onnxruntime CPU session; `threads` pins intra-op threads so timings compare across engines.
    `all_fusions`: onnxruntime's defaults, SLOW_FUSIONS included (what its ORT-format converter bakes in).
    `profile_prefix`: record onnxruntime's per-node profile (end_profiling() writes it; for benchmarks)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if profile_prefix:
        opts.enable_profiling = True
        opts.profile_file_prefix = profile_prefix
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    if custom_ops:
        opts.register_custom_ops_library(extensions_library())
    # onnxruntime would fuse each residual Add + LayerNormalization into SkipLayerNormalization again at load;
    # its CPU kernel is the slow one (export/stage.py, optimize_graph), so the export leaves them apart.
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"],
                                disabled_optimizers=[] if all_fusions else SLOW_FUSIONS)


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def require_texts(texts: Iterable[Any]) -> list[str]:
    """Texts as a list of non-empty strings; an empty one is the caller's mistake, named by position."""
    out = []
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise BadInput(f"text #{i + 1} is a {type(t).__name__}, not a string")
        if not t.strip():
            raise BadInput(f"text #{i + 1} is empty; give each text some words (blank lines in a .txt input are skipped)")
        out.append(t)
    return out


def load_tokenizer(run_dir: Path, max_length: int, pad_id: int) -> Any:
    """The export's tokenizer.json, cutting at max_length and padding to the longest text of a batch."""
    from tokenizers import Tokenizer

    path = Path(run_dir) / "tokenizer.json"
    if not path.is_file():
        raise BadInput(f"{path}: missing; the export folder must hold the tokenizer it was exported with")
    tok = Tokenizer.from_file(str(path))
    # The export bakes these in; set them again so a hand-edited tokenizer.json cannot change the inputs.
    tok.enable_truncation(max_length)
    tok.enable_padding(pad_id=pad_id, pad_token=tok.id_to_token(pad_id) or "[PAD]")
    return tok


COLUMNS = {"input_ids": "ids", "attention_mask": "attention_mask", "token_type_ids": "type_ids"}


def check_inputs(input_names: list[str]) -> None:
    unknown = [n for n in input_names if n not in COLUMNS]
    if unknown:
        raise BadInput(f"the model has inputs {unknown} that a text tokenizer does not produce")


def encode(tokenizer: Any, texts: list[str], input_names: list[str]) -> tuple[dict[str, np.ndarray], list[bool]]:
    """Feeds for the graph's inputs (int64 [batch, longest]) and, per text, whether it was truncated."""
    check_inputs(input_names)
    encs = tokenizer.encode_batch(texts)
    feeds = {n: np.asarray([getattr(e, COLUMNS[n]) for e in encs], dtype=np.int64) for n in input_names}
    return feeds, [bool(e.overflowing) for e in encs]


def pad(encs: list[Any], input_names: list[str], pad_id: int) -> dict[str, np.ndarray]:
    """Feeds for unpadded encodings, padded to the longest of them (as the padding tokenizer would)."""
    width = max(len(e.ids) for e in encs)
    feeds = {}
    for n in input_names:
        a = np.full((len(encs), width), pad_id if n == "input_ids" else 0, dtype=np.int64)
        for row, e in enumerate(encs):
            v = getattr(e, COLUMNS[n])
            a[row, : len(v)] = v
        feeds[n] = a
    return feeds


# A batch may pad its texts by at most this share of their own tokens (plus a few tokens): similar lengths
# go together, and a long text does not make 31 short ones pay for its length.
PAD_SLACK, PAD_TOKENS = 0.25, 8


def token_batches(lengths: list[int], size: int) -> list[list[int]]:
    """Indices in batches of at most `size`, by token count: sorted, and a new batch starts where the next text
    would pad the batch's shortest past PAD_SLACK (on 128 restaurant reviews of 24 tokens on average, fixed
    batches of 32 sorted by length carried 55 tokens per text; these carry ~27)."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    batches: list[list[int]] = []
    for i in order:
        b = batches[-1] if batches else None
        if b is None or len(b) >= size or lengths[i] > max(lengths[b[0]] * (1 + PAD_SLACK), lengths[b[0]] + PAD_TOKENS):
            batches.append([i])
        else:
            b.append(i)
    return batches


def length_batches(texts: list[str], size: int) -> list[list[int]]:
    """Indices of `texts` in batches of similar length: a batch pads to its longest text, so mixing a
    5-token text with a 120-token one would spend most of the work on padding."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    return [order[i : i + size] for i in range(0, len(order), size)]


class Predictor:
    """Label texts with an export folder's model. `model` picks a file in the folder; default per labels.json."""

    def __init__(self, run_dir: str | Path, model: str | None = None, threads: int | None = None,
                 all_fusions: bool = False) -> None:
        self.run_dir = Path(run_dir)
        meta_path = self.run_dir / LABELS_FILE
        if not meta_path.is_file():
            raise BadInput(
                f"{self.run_dir}: no {LABELS_FILE}, so not a finished export run. "
                "Run `distill export TRAIN_RUN --onnx --out DIR` and pass DIR."
            )
        self.meta = json.loads(meta_path.read_text(encoding="utf-8"))
        self.labels: list[str] = list(self.meta["labels"])
        self.max_length: int = int(self.meta["max_length"])
        self.model_file = model or self.meta["default_model"]
        path = self.run_dir / self.model_file
        if not path.is_file():
            have = sorted(p.name for p in self.run_dir.iterdir() if p.suffix in (".onnx", ".ort"))
            raise BadInput(f"{path}: no such model file; this export has {have}")
        self.tokenizer_in_graph = "with_tokenizer" in self.model_file
        self.session = session(path, threads, custom_ops=self.tokenizer_in_graph, all_fusions=all_fusions)
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.pad_id = int(self.meta.get("pad_token_id", 0))
        self.tokenizer = None if self.tokenizer_in_graph else load_tokenizer(self.run_dir, self.max_length, self.pad_id)
        if self.tokenizer is not None:
            check_inputs(self.input_names)
            # predict() tokenizes every text once, unpadded, then batches by token count and pads each batch.
            self.unpadded = type(self.tokenizer).from_str(self.tokenizer.to_str())
            self.unpadded.no_padding()

    def encode(self, texts: list[str]) -> tuple[dict[str, np.ndarray], list[bool]]:
        """Model inputs (int64 [batch, longest]) for a batch, and whether each text was cut at max_length."""
        if self.tokenizer is None:
            raise BadInput(f"{self.model_file} takes raw text: call predict(), not encode()")
        return encode(self.tokenizer, texts, self.input_names)

    def logits(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        return self.session.run(["logits"], feeds)[0]

    def batch_logits(self, texts: list[str]) -> np.ndarray:
        return self.logits(self.encode(texts)[0])

    def probabilities(self, texts: list[str]) -> tuple[np.ndarray, list[bool]]:
        """[len(texts), num_labels] probabilities and the truncation flags, for one batch."""
        if not self.tokenizer_in_graph:
            feeds, truncated = self.encode(texts)
            return softmax(self.logits(feeds).astype(np.float64)), truncated
        # The tokenizer op takes ONE string per call (two strings would be joined into one sequence), and the
        # graph's input is fixed to shape [1] so onnxruntime refuses more: loop.
        probs, truncated = [], []
        for t in texts:
            p, cut = self.session.run(["probabilities", "truncated"], {"text": np.array([t], dtype=object)})
            probs.append(p[0])
            truncated.append(bool(cut[0]))
        return np.asarray(probs, dtype=np.float64), truncated

    def batches(self, texts: list[str], batch_size: int) -> Iterator[tuple[list[int], np.ndarray, list[bool]]]:
        """(indices, probabilities, truncation flags) per batch of similar token counts (token_batches)."""
        if self.tokenizer is None:
            for idx in length_batches(texts, batch_size):
                yield (idx, *self.probabilities([texts[i] for i in idx]))
            return
        encs = self.unpadded.encode_batch(texts) if len(texts) > 1 else [self.unpadded.encode(texts[0])]
        for idx in token_batches([len(e.ids) for e in encs], batch_size):
            feeds = pad([encs[i] for i in idx], self.input_names, self.pad_id)
            yield idx, softmax(self.logits(feeds).astype(np.float64)), [bool(encs[i].overflowing) for i in idx]

    def predict(self, texts: Iterable[str], batch_size: int = 32) -> list[dict[str, Any]]:
        """One {"text", "label", "probs", "truncated"} per text, in the order given."""
        texts = require_texts(texts)
        out: list[dict[str, Any]] = [{} for _ in texts]
        for idx, probs, truncated in self.batches(texts, batch_size):
            for i, p, cut in zip(idx, probs, truncated):
                out[i] = {
                    "text": texts[i],
                    "label": self.labels[int(p.argmax())],
                    "probs": {lab: float(v) for lab, v in zip(self.labels, p)},
                    "truncated": cut,
                }
        return out


def read_texts(path: str | Path) -> list[str]:
    """Texts from a .txt (one per line, blank lines skipped), .jsonl ({"text": ...}) or .csv/.tsv (a `text` column)."""
    from distill.textfile import read_utf8

    p = Path(path)
    if not p.is_file():
        raise BadInput(f"{p}: no such file; pass a .txt, .jsonl, .csv or .tsv file of texts")
    suffix = p.suffix.lower()
    if suffix not in (".txt", ".jsonl", ".csv", ".tsv"):
        raise BadInput(f"{p}: unsupported file type {suffix!r}; use .txt, .jsonl, .csv or .tsv")
    raw = read_utf8(p)
    if suffix == ".txt":
        return [ln for ln in raw.splitlines() if ln.strip()]
    if suffix == ".jsonl":
        texts = []
        for n, line in enumerate(raw.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise BadInput(f"{p}:{n}: not valid JSON ({e.msg})") from None
            if not isinstance(row, dict) or "text" not in row:
                raise BadInput(f"{p}:{n}: each line must be an object with a \"text\" field")
            texts.append(row["text"])
        return texts
    reader = csv.reader(io.StringIO(raw, newline=""), delimiter="\t" if suffix == ".tsv" else ",")
    header = next(reader, None)
    if not header:
        raise BadInput(f"{p}: empty file; it needs a header row with a `text` column")
    if "text" not in header:
        raise BadInput(f"{p}: no `text` column (columns: {header}); name the column that holds the texts `text`")
    col, texts = header.index("text"), []
    for fields in reader:
        if not fields:
            continue
        if len(fields) != len(header):
            raise BadInput(
                f"{p}:{reader.line_num}: {len(fields)} fields but the header has {len(header)}; "
                "quote texts that contain the delimiter"
            )
        texts.append(fields[col])
    return texts
