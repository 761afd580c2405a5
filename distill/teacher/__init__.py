"""The teacher: any OpenAI-compatible endpoint (OpenAI, vLLM, Ollama, llama.cpp) or the embedded one.

    prompt.py   pure: build the prompt for a text, turn an answer into a label + probabilities
    client.py   async requests with bounded concurrency, retries, budget; answers go to the cache
    cache.py    SQLite: every paid answer is kept, keyed by what was asked
    pricing.py  price table and cost estimates
    batch.py    the OpenAI Batch API (half price), resumable
    local.py    the embedded llama.cpp server (xllamacpp) on 127.0.0.1
"""
