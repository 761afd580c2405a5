"""Does one MatMul of MiniLM's shapes use the second core? fp32 against dynamic int8, 1 and 2 threads.

    OMP_NUM_THREADS=2 python benchmarks/int8_gemm_threads.py      # ~30 s

One MatMul node (384 -> 1536, MiniLM's feed-forward input projection) with random weights, as a graph of its
own, in fp32 and quantized the way the export quantizes (`quantize_dynamic`, per-channel int8 weights over 7
bits); rows = tokens of one text (28, a restaurant review at batch 1) up to a padded batch (512). Prints
microseconds per call and the 2-thread speed-up: what bounds the int8 Predictor at batch 1 (README, Inference).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

K, N = 384, 1536


def build(folder: Path) -> dict[str, Path]:
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from onnxruntime.quantization import QuantType, quantize_dynamic

    w = np.random.default_rng(0).normal(0, 0.05, (K, N)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "matmul",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, "rows", K])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, "rows", N])],
        [numpy_helper.from_array(w, "w")],
    )  # fmt: skip
    fp32, int8 = folder / "matmul.onnx", folder / "matmul.int8.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), fp32)
    quantize_dynamic(fp32, int8, weight_type=QuantType.QInt8, per_channel=True, reduce_range=True)
    return {"fp32": fp32, "int8": int8}


def micros(path: Path, rows: int, threads: int) -> float:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.log_severity_level = threads, 3
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).normal(size=(1, rows, K)).astype(np.float32)
    for _ in range(50):
        sess.run(None, {"x": x})
    calls = max(100, 40_000 // rows)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(calls):
            sess.run(None, {"x": x})
        best = min(best, (time.perf_counter() - start) / calls * 1e6)
    return best


def main() -> None:
    from _common import describe_machine, machine, table

    with tempfile.TemporaryDirectory() as tmp:
        files = build(Path(tmp))
        rows = []
        for kind, path in files.items():
            for m in (28, 128, 512):
                t1, t2 = micros(path, m, 1), micros(path, m, 2)
                rows.append([kind, m, round(t1, 1), round(t2, 1), round(t1 / t2, 2), round(m * K * N / t1 / 1e3)])
    print(table(["MatMul", "rows", "us 1 thread", "us 2 threads", "2-thread speed-up", "GMAC/s at 1 thread"], rows))
    print(f"\nmachine: {describe_machine(machine())}")


if __name__ == "__main__":
    main()
