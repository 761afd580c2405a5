"""Libraries' console chatter, turned down for one block and turned back up after it.

Every change to a library's log level in distill goes through these context managers, so that a stage
run in a longer-lived process (a notebook, `distill run`, the tests) leaves the levels as it found them.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Iterator

# onnxruntime's default logger severity (0 verbose .. 4 fatal); it has no getter, so this is what is restored.
ORT_DEFAULT_SEVERITY = 2


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Keep transformers' info/warning chatter (TrainingArguments notes, tokenizer hints) off the console."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)


@contextlib.contextmanager
def quiet_logger(name: str | None, level: int) -> Iterator[None]:
    """A standard-library logger (None: the root logger) at `level` for the block."""
    logger = logging.getLogger(name)
    before, logger.level = logger.level, level
    try:
        yield
    finally:
        logger.level = before


@contextlib.contextmanager
def quiet_onnxruntime(severity: int = 3) -> Iterator[None]:
    """onnxruntime's default logger at `severity` (3: errors only) for the block."""
    import onnxruntime as ort

    ort.set_default_logger_severity(severity)
    try:
        yield
    finally:
        ort.set_default_logger_severity(ORT_DEFAULT_SEVERITY)
