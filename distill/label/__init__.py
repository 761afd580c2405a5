"""The label stage: a teacher (any OpenAI-compatible endpoint or the embedded one) labels every text.

    stage.py    the stage: ask the teacher once per distinct text, write labels.jsonl and metrics
    task.py     the labels, their descriptions, the instructions and the few-shot examples -> the prompt's Task
    prompt.py   pure: build the prompt for a text, turn an answer into a label + probabilities
    client.py   async requests with bounded concurrency, retries, budget; answers go to the cache
    cache.py    SQLite: every paid answer is kept, keyed by what was asked
    pricing.py  price table and cost estimates
    batch.py    the OpenAI Batch API (half price), resumable
    server.py   the embedded llama.cpp server (xllamacpp) on 127.0.0.1

Torch-free, like everything this package imports.
"""

from distill.label.stage import label

__all__ = ["label"]
