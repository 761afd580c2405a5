"""The export stage: a finished train run -> one verified, quantized ONNX folder that an app ships.

    stage.py    the stage: ONNX export, graph optimization, int8 quantization, labels.json, in that order
    checks.py   verification: parity with PyTorch, int8 accuracy, timings and sizes
    extras.py   optional outputs: the tokenizer-in-graph model and ORT-format files
    card.py     the README.md for app developers (Python, Kotlin, Swift, JavaScript)

Importing this package does not import torch, onnx or onnxruntime; the stage imports them when it runs.
"""

from distill.export.stage import export

__all__ = ["export"]
