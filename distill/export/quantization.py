"""int8 dynamic quantization of an exported model, with optimum's preset for the target CPU.

The recipes are tried in order by the verification (checks.py) until one keeps the accuracy.
"""

from __future__ import annotations

import logging
from pathlib import Path

from distill.errors import BadInput

# --target -> optimum's dynamic-quantization preset. avx512 means AVX-512 VNNI, today's server CPUs; avx2
# keeps uint8 weights because AVX2 kernels without VNNI saturate with int8 weights.
PRESETS = {"avx2": "avx2", "avx512": "avx512_vnni", "arm64": "arm64"}


def after_gelu(model_path: Path) -> list[str]:
    """MatMuls fed by a GELU (the feed-forward output projections): their inputs have the outlier activations
    that per-tensor uint8 quantization handles worst. Found by graph shape, so it works for any encoder."""
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    producer = {out: node for node in graph.node for out in node.output}

    def from_gelu(tensor: str, hops: int) -> bool:
        node = producer.get(tensor)
        if node is None or hops < 0:
            return False
        if node.op_type in ("Gelu", "BiasGelu", "FastGelu", "QuickGelu", "Erf"):
            return True
        return node.op_type in ("Mul", "Add", "Div") and any(from_gelu(t, hops - 1) for t in node.input)

    return [n.name for n in graph.node if n.op_type == "MatMul" and from_gelu(n.input[0], 3)]


# Tried in this order until one keeps the accuracy: all of the weights in int8 (smallest), then the same with
# the feed-forward output projections left in fp32. On a MiniLM student (81% accuracy, 240 validation rows) the
# first lost 1.7 points and the second 0.4, for 23 vs 34 MB (fp32: 91 MB).
RECIPES = ("all", "ffn-out-fp32")


def quantize(src: Path, dst: Path, target: str, recipe: str = "all") -> None:
    """int8 dynamic quantization with optimum's preset for the target (embeddings included, via Gather),
    per-channel weights (measured: fewer flipped predictions than per-tensor on every preset)."""
    import onnx
    from onnxruntime.quantization import quantize_dynamic
    from optimum.onnxruntime.configuration import AutoQuantizationConfig

    if target not in PRESETS:
        raise BadInput(f"--target {target!r} is unknown; use one of {', '.join(PRESETS)}")
    preset = getattr(AutoQuantizationConfig, PRESETS[target])(is_static=False, per_channel=True)
    exclude = after_gelu(src) if recipe == "ffn-out-fp32" else []
    root = logging.getLogger()
    level, root.level = root.level, logging.ERROR  # it suggests "pre-processing", which is for static quantization
    try:
        quantize_dynamic(
            src, dst, nodes_to_exclude=exclude,
            op_types_to_quantize=[str(getattr(op, "value", op)) for op in preset.operators_to_quantize],
            per_channel=preset.per_channel, reduce_range=preset.reduce_range, weight_type=preset.weights_dtype,
            # DefaultTensorType: shape inference cannot type the outputs of fused (com.microsoft) nodes.
            extra_options={"WeightSymmetric": preset.weights_symmetric, "ActivationSymmetric": preset.activations_symmetric,
                           "DefaultTensorType": onnx.TensorProto.FLOAT},
        )  # fmt: skip
    finally:
        root.level = level
