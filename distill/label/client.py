"""Asking the teacher: async, a bounded number of requests in flight, retries, a budget, a cache.

Retries and back-off are the `openai` client's own (it retries 408/409/429/5xx, connection errors and
timeouts with exponential back-off and honours Retry-After / retry-after-ms); we set how many and the
timeout. A request that still fails is counted and left unanswered (not cached), so a rerun retries it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Callable

from distill.errors import BadInput, DistillError, TeacherUnavailable
from distill.label import prompt as P
from distill.label.cache import AnswerCache, request_key
from distill.label.pricing import Price, estimate_tokens

# How many alternatives to ask for at the next token. 20 is OpenAI's chat maximum; llama.cpp and vLLM
# accept it on completions too. (OpenAI's own legacy completions endpoint caps it at 5 and says so in a
# 400, which the preflight reports.) A small base model often ranks formatting tokens first, so 5 is
# too few to find every label.
TOP_K = {"completions": 20, "chat": 20}
JSON_MAX_TOKENS = 16


@dataclass
class Endpoint:
    base_url: str
    model: str
    kind: str  # "completions" | "chat"
    teacher_id: str  # identity in cache keys: the model name (or the GGUF file for the local teacher)
    api_key: str = field(repr=False, default="not-needed")  # never logged, never written
    timeout: float = 60.0
    max_retries: int = 6


def build_request(task: P.Task, text: str, kind: str, json_mode: bool) -> dict[str, Any]:
    """The request body (without the model), deterministic: it is what the cache key hashes."""
    if kind == "chat":
        body: dict[str, Any] = {"messages": P.chat_messages(task, text, json_mode), "temperature": 0}
        if json_mode:
            body.update(max_tokens=JSON_MAX_TOKENS, response_format=P.json_schema(task))
        else:
            body.update(max_tokens=1, logprobs=True, top_logprobs=TOP_K["chat"])
        return body
    body = {"prompt": P.completion_prompt(task, text), "temperature": 0}
    if json_mode:
        # llama.cpp / vLLM constrain completions with a JSON schema passed in the body: a quoted label.
        body.update(max_tokens=JSON_MAX_TOKENS, json_schema={"type": "string", "enum": list(task.labels)})
    else:
        body.update(max_tokens=1, logprobs=TOP_K["completions"])
    return body


def is_json_request(request: dict[str, Any]) -> bool:
    return "response_format" in request or "json_schema" in request


def answer_from_response(resp: dict[str, Any], json_mode: bool) -> dict[str, Any]:
    """What we cache from a response: the first choice's text and top logprobs, and the token usage."""
    choices = resp.get("choices") or []
    choice = choices[0] if choices and isinstance(choices[0], dict) else {}
    text = choice.get("text")
    if text is None:
        text = (choice.get("message") or {}).get("content")
    usage = resp.get("usage") or {}
    tops = None if json_mode else P.top_logprobs(choice)
    return {
        "mode": "json" if json_mode else "logprobs",
        "text": text if isinstance(text, str) else None,
        "top": [[t, lp] for t, lp in tops] if tops else None,
        "prompt_tokens": int(usage.get("prompt_tokens") or 0),
        "completion_tokens": int(usage.get("completion_tokens") or 0),
        # Prompt tokens the server served from its prefix cache (OpenAI and llama.cpp both report it).
        "cached_tokens": int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0),
    }


@dataclass
class Tally:
    """Running totals the progress bar and metrics.json show."""

    teacher_calls: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    cached_prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    stopped_by_budget: bool = False
    last_error: str | None = None
    failed_keys: set[str] = field(default_factory=set)


class Teacher:
    """One endpoint, one cache, one budget."""

    def __init__(self, endpoint: Endpoint, cache: AnswerCache, price: Price, max_cost: float | None = None):
        from openai import AsyncOpenAI

        self.endpoint = endpoint
        self.cache = cache
        self.price = price
        self.max_cost = max_cost
        self.tally = Tally()
        # Estimated vs actual cost of answered requests: the budget check scales its estimate by the
        # observed ratio, so a tokenizer that counts more than ~4 chars/token cannot overshoot the cap.
        self._estimated = self._actual = 0.0
        self.client = AsyncOpenAI(
            base_url=endpoint.base_url,
            api_key=endpoint.api_key,
            timeout=endpoint.timeout,
            max_retries=endpoint.max_retries,
        )

    def scrub(self, text: str) -> str:
        """Error text goes to metrics.json and the terminal: never let the API key ride along."""
        key = self.endpoint.api_key
        return text.replace(key, "***") if key and len(key) > 3 else text

    def key(self, request: dict[str, Any]) -> str:
        return request_key(self.endpoint.teacher_id, {"kind": self.endpoint.kind, "v": P.TEMPLATE_VERSION, **request})

    async def _call(self, request: dict[str, Any]) -> dict[str, Any]:
        body = dict(request)
        json_mode = is_json_request(body)
        extra = {k: body.pop(k) for k in ("json_schema",) if k in body}
        if self.endpoint.kind == "chat":
            resp = await self.client.chat.completions.create(model=self.endpoint.model, extra_body=extra or None, **body)
        else:
            resp = await self.client.completions.create(model=self.endpoint.model, extra_body=extra or None, **body)
        data = resp.model_dump() if hasattr(resp, "model_dump") else resp
        if not isinstance(data, dict):
            raise ValueError(f"the server's reply is not a JSON object: {str(data)[:200]!r}")
        return answer_from_response(data, json_mode)

    def _account(self, answer: dict[str, Any], request: dict[str, Any]) -> None:
        cost = self.price.cost(answer["prompt_tokens"], answer["completion_tokens"])
        self.tally.teacher_calls += 1
        self.tally.prompt_tokens += answer["prompt_tokens"]
        self.tally.cached_prompt_tokens += answer.get("cached_tokens", 0)
        self.tally.completion_tokens += answer["completion_tokens"]
        self.tally.cost_usd += cost
        self._estimated += self.estimate_cost(request, raw=True)
        self._actual += cost

    async def preflight(self, request: dict[str, Any]) -> dict[str, Any]:
        """One request before the run (the calibration input): fail fast and clearly when it can't work."""
        import openai

        key = self.key(request)
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        url = redact_url(self.endpoint.base_url)
        try:
            answer = await self._call(request)
        except openai.AuthenticationError:
            raise TeacherUnavailable(f"the teacher at {url} rejected the API key; check OPENAI_API_KEY") from None
        except openai.NotFoundError as e:
            raise BadInput(
                f"the teacher at {url} does not serve model {self.endpoint.model!r} on the "
                f"{self.endpoint.kind} endpoint ({self.scrub(_short(e))}); check --teacher, or --endpoint chat|completions"
            ) from None
        except (openai.APIConnectionError, openai.APITimeoutError):
            raise TeacherUnavailable(
                f"cannot reach the teacher at {url}; start the server or fix --base-url / OPENAI_BASE_URL"
            ) from None
        except openai.BadRequestError as e:
            raise BadInput(f"the teacher at {url} refused the request: {self.scrub(_short(e))}") from None
        except openai.APIError as e:
            raise DistillError(f"the teacher at {url} failed after {self.endpoint.max_retries} retries: {self.scrub(_short(e))}") from None
        self._account(answer, request)
        self.cache.put(key, answer)
        return answer

    async def ask_all(
        self, jobs: list[tuple[str, dict[str, Any]]], concurrency: int, on_answer: Callable[[str], None]
    ) -> None:
        """Ask every (key, request); store each answer as it arrives; stop launching at the budget."""
        queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        for job in jobs:
            queue.put_nowait(job)
        reserved = 0.0  # estimated cost of requests in flight

        async def worker() -> None:
            nonlocal reserved
            while not queue.empty() and not self.tally.stopped_by_budget:
                key, request = queue.get_nowait()
                estimate = self.estimate_cost(request)
                if self.max_cost is not None and self.tally.cost_usd + reserved + estimate > self.max_cost:
                    self.tally.stopped_by_budget = True
                    return
                reserved += estimate
                try:
                    answer = await self._call(request)
                except Exception as e:  # after the client's own retries: count it, keep going
                    self.tally.errors += 1
                    self.tally.failed_keys.add(key)
                    self.tally.last_error = f"{type(e).__name__}: {self.scrub(_short(e))}"
                    on_answer(key)
                    continue
                finally:
                    reserved -= estimate
                self._account(answer, request)
                self.cache.put(key, answer)
                on_answer(key)

        await asyncio.gather(*(worker() for _ in range(min(concurrency, max(1, len(jobs))))))

    def estimate_cost(self, request: dict[str, Any], raw: bool = False) -> float:
        prompt_tokens, completion_tokens = estimate_request_tokens(request)
        estimate = self.price.cost(prompt_tokens, completion_tokens)
        if raw or self._estimated <= 0:
            return estimate
        return estimate * max(1.0, self._actual / self._estimated)

    async def close(self) -> None:
        await self.client.close()


def estimate_request_tokens(request: dict[str, Any]) -> tuple[int, int]:
    if "messages" in request:
        prompt = sum(estimate_tokens(m["content"]) + 4 for m in request["messages"])
    else:
        prompt = estimate_tokens(request.get("prompt", ""))
    return prompt, int(request.get("max_tokens") or 1)


def redact_url(url: str | None) -> str | None:
    """A base URL fit for files and logs: no user:password@ and no query string (keys hide there)."""
    if not url:
        return url
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _short(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return text[:300]
