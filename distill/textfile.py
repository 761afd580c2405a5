"""Reading the user's text files: UTF-8 or a one-line error that names the file, the place and the fix.

Kept free of heavy imports: the onnxruntime-only predictor (runtime.py) uses it too.
"""

from __future__ import annotations

import codecs
from pathlib import Path

from distill.errors import BadInput

CHUNK = 1 << 20


def _not_utf8(path: Path, data: bytes, start: int, offset: int, line: int) -> BadInput:
    bad = data[start : start + 1].hex() or "??"
    fixed = path.with_name(f"{path.stem}.utf8{path.suffix}")
    line += data[:start].count(b"\n")
    return BadInput(
        f"{path}: not UTF-8 text (byte 0x{bad} on line {line}, offset {offset + start}); "
        f"re-encode it as UTF-8, e.g. `iconv -f latin1 -t utf-8 {path} > {fixed}`, and pass that file"
    )


def check_utf8(path: str | Path) -> None:
    """Raise BadInput unless the whole file decodes as UTF-8; reads in chunks, so big inputs cost little."""
    path = Path(path)
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset, line = 0, 1
    with open(path, "rb") as f:
        while True:
            data = f.read(CHUNK)
            try:
                decoder.decode(data, final=not data)
            except UnicodeDecodeError as e:
                raise _not_utf8(path, data, e.start, offset, line) from None
            if not data:
                return
            offset += len(data)
            line += data.count(b"\n")


def read_utf8(path: str | Path) -> str:
    """The file's text (a UTF-8 BOM dropped), or BadInput naming the first byte that is not UTF-8."""
    path = Path(path)
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise _not_utf8(path, data, e.start, 0, 1) from None


def check_safetensors(path: str | Path) -> None:
    """A cheap integrity check of a .safetensors file (header parses, data as long as the header says), so a
    truncated or overwritten model is a one-line error before any library reads it."""
    import json

    path = Path(path)
    size = path.stat().st_size
    problem = None
    with open(path, "rb") as f:
        head = f.read(8)
        n = int.from_bytes(head, "little") if len(head) == 8 else -1
        if n < 2 or 8 + n > size:
            problem = f"its header is not valid, or the file is cut short ({size} bytes)"
        else:
            try:
                meta = json.loads(f.read(n))
                end = max((int(v["data_offsets"][1]) for k, v in meta.items() if k != "__metadata__"), default=0)
            except (ValueError, KeyError, TypeError, IndexError):
                problem = "its header is not valid"
            else:
                if 8 + n + end > size:
                    problem = f"it is cut short ({size} bytes, the header needs {8 + n + end})"
    if problem:
        raise BadInput(f"{path}: damaged model weights ({problem}); retrain, or restore the file from a copy")
