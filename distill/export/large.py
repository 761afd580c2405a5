"""ONNX models near or over protobuf's 2 GiB limit: the weights go to an external data file beside the graph.

A 0.5B decoder in fp32 is 1.98 GB (Qwen2.5-0.5B, just under the limit); anything bigger cannot be one .onnx
file. onnxruntime loads `model.onnx` + `model.onnx.data` from the same folder, so an app ships both. Every
copy of a model inside the export goes through `place`, which keeps a model and its data file together.
"""

from __future__ import annotations

import shutil
from pathlib import Path

# Over this many bytes (graph + weights) a model is saved with external data: below 2 GiB with room for the
# graph's own protobuf overhead.
EXTERNAL_DATA_BYTES = 1_900_000_000


def data_files(path: Path) -> list[Path]:
    """The external data files a model refers to (none for a self-contained file)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    places = {
        entry.value
        for t in model.graph.initializer
        if t.data_location == onnx.TensorProto.EXTERNAL
        for entry in t.external_data
        if entry.key == "location"
    }
    return [path.parent / p for p in sorted(places)]


def total_size(path: Path) -> int:
    """Bytes on disk of a model and its external data."""
    return path.stat().st_size + sum(f.stat().st_size for f in data_files(path))


def needs_external(path: Path) -> bool:
    return total_size(path) > EXTERNAL_DATA_BYTES


def place(src: Path, dst: Path) -> None:
    """Copy a model to `dst`; a large one (or one that already has external data) is written as `dst` plus
    `dst.name + '.data'`, so two models of one export never share a data file."""
    import onnx

    old = dst.parent / f"{dst.name}.data"
    old.unlink(missing_ok=True)
    if not data_files(src) and not needs_external(src):
        shutil.copy2(src, dst)
        return
    model = onnx.load(str(src))  # with its weights
    onnx.save_model(model, str(dst), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=old.name, size_threshold=1024)  # fmt: skip
