"""The export stage: a finished train run -> one verified, quantized ONNX folder that an app ships.

    stage.py         the stage: ONNX export, graph optimization, int8, labels.json, checks, extras, card
    train_run.py     the finished train run it reads: model folder, labels, max_length, validation split
    quantization.py  int8 dynamic quantization and the recipes tried in order
    checks.py        verification: parity with PyTorch, int8 accuracy, timings and sizes per engine
    extras.py        optional outputs: the tokenizer-in-graph model and ORT-format files
    large.py         models over protobuf's 2 GB limit: weights in an external data file
    card.py          the README.md for app developers, from card.md / card_with_tokenizer.md

Importing this package does not import torch, onnx or onnxruntime; the stage imports them when it runs.
"""

from distill.export.stage import export

__all__ = ["export"]
