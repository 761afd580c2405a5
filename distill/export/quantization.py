"""int8 dynamic quantization of an exported model, with optimum's preset for the target CPU.

The recipes are tried in order by the verification (checks.py) until one keeps the accuracy.
"""

from __future__ import annotations

import logging
from pathlib import Path

from distill.errors import BadInput
from distill.logs import quiet_logger
from distill.export.large import needs_external

# --target -> optimum's dynamic-quantization preset. avx512 means AVX-512 VNNI, today's server CPUs; avx2
# keeps uint8 weights because AVX2 kernels without VNNI saturate with int8 weights.
PRESETS = {"avx2": "avx2", "avx512": "avx512_vnni", "arm64": "arm64"}


def after_gelu(model_path: Path) -> list[str]:
    """MatMuls fed by a GELU, or by a SiLU-gated product as in Qwen/Llama (x * sigmoid(x) * up): the feed-forward
    output projections, whose inputs have the outlier activations that 8-bit quantization handles worst (into
    Qwen2.5-0.5B's mlp.down_proj they reach 330). Found by graph shape, so it works for any encoder or decoder."""
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    producer = {out: node for node in graph.node for out in node.output}

    def from_gelu(tensor: str, hops: int) -> bool:
        node = producer.get(tensor)
        if node is None or hops < 0:
            return False
        if node.op_type in ("Gelu", "BiasGelu", "FastGelu", "QuickGelu", "Erf", "Sigmoid"):
            return True
        return node.op_type in ("Mul", "Add", "Div") and any(from_gelu(t, hops - 1) for t in node.input)

    return [n.name for n in graph.node if n.op_type == "MatMul" and from_gelu(n.input[0], 3)]


# Tried in this order until one keeps the accuracy within --max-accuracy-drop (else the best of them ships):
# - all: every weight in 8 bits with the target's preset (smallest). On a MiniLM student (81%, 240 validation
#   rows) it lost 1.7 points.
# - all-reduce-range: the same size with int8 weights over 7 bits (reduce_range): AVX2 without VNNI adds the
#   int8 x uint8 products in 16 bits, which saturate at full range. mpnet on 32 rows kept 31/32 predictions
#   where plain int8 kept 22 and the avx2 preset (uint8) 30.
# - ffn-out-fp32: the feed-forward output projections stay in fp32 (after_gelu): MiniLM lost 0.4 points at 34
#   MB instead of 23 (fp32 91); Qwen2.5-0.5B kept 31/32 with its 24 down_proj MatMuls in fp32 (811 MB, where
#   all-int8 was 497 MB and kept 22/32).
RECIPES = ("all", "all-reduce-range", "ffn-out-fp32")
# The recipes of the same size, which the export times on the machine that exports (stage.build_models) and the
# verification tries fastest first; the others are fallbacks for accuracy only.
SPEED_RECIPES = ("all", "all-reduce-range")


def quantize(src: Path, dst: Path, target: str, recipe: str = "all") -> None:
    """int8 dynamic quantization with optimum's preset for the target (embeddings included, via Gather),
    per-channel weights (measured: fewer flipped predictions than per-tensor on every preset)."""
    import onnx
    from onnxruntime.quantization import quantize_dynamic
    from optimum.onnxruntime.configuration import AutoQuantizationConfig

    if target not in PRESETS:
        raise BadInput(f"--target {target!r} is unknown; use one of {', '.join(PRESETS)}")
    if recipe not in RECIPES:
        raise BadInput(f"int8 recipe {recipe!r} is unknown; use one of {', '.join(RECIPES)}")
    preset = getattr(AutoQuantizationConfig, PRESETS[target])(is_static=False, per_channel=True)
    exclude = after_gelu(src) if recipe == "ffn-out-fp32" else []
    weight_type, reduce_range = preset.weights_dtype, preset.reduce_range
    if recipe == "all-reduce-range":
        from onnxruntime.quantization import QuantType

        weight_type, reduce_range = QuantType.QInt8, True
    with quiet_logger(None, logging.ERROR):  # it suggests "pre-processing", which is for static quantization
        quantize_dynamic(
            src, dst, nodes_to_exclude=exclude,
            op_types_to_quantize=[str(getattr(op, "value", op)) for op in preset.operators_to_quantize],
            per_channel=preset.per_channel, reduce_range=reduce_range, weight_type=weight_type,
            use_external_data_format=needs_external(src),  # over 2 GB: weights beside the graph (large.py)
            # DefaultTensorType: shape inference cannot type the outputs of fused (com.microsoft) nodes.
            extra_options={"WeightSymmetric": preset.weights_symmetric, "ActivationSymmetric": preset.activations_symmetric,
                           "DefaultTensorType": onnx.TensorProto.FLOAT},
        )  # fmt: skip
