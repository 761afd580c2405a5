"""Asking the teacher: async, a bounded number of requests in flight, retries, a budget, a cache.

Retries and back-off are the `openai` client's own (it retries 408/409/429/5xx, connection errors and
timeouts with exponential back-off and honours Retry-After / retry-after-ms); we set how many and the
timeout. A request that still fails is counted and left unanswered (not cached), so a rerun retries it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Callable

from distill.errors import BadInput, TeacherUnavailable
from distill.label import prompt as P
from distill.secrets import redact, redact_url
from distill.label.cache import INVALID_ATTEMPTS_CAP, AnswerCache, request_key
from distill.label.pricing import Price, estimate_tokens

# How many alternatives to ask for at the next token. 20 is OpenAI's chat maximum; llama.cpp and vLLM
# accept it on completions too. (OpenAI's own legacy completions endpoint caps it at 5 and says so in a
# 400, which the preflight reports.) A small base model often ranks formatting tokens first, so 5 is
# too few to find every label.
TOP_K = {"completions": 20, "chat": 20}
JSON_MAX_TOKENS = 16
# The mode probe: up to PROBES content-free requests; constrained JSON output only when this many
# well-formed replies agree that the server gives no logprobs (a single odd reply decides nothing).
PROBES = 3
NO_LOGPROBS_AGREE = 2
MALFORMED_RETRIES = 2  # a body that does not parse is asked again at once, this many times


@dataclass
class Endpoint:
    base_url: str
    model: str
    kind: str  # "completions" | "chat"
    teacher_id: str  # identity in cache keys: the model name (or the GGUF file for the local teacher)
    api_key: str = field(repr=False, default="not-needed")  # never logged, never written
    timeout: float = 60.0
    max_retries: int = 6
    token_prefix: bool = False  # try llama.cpp's /tokenize, and send the prompts' shared prefix as token ids


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
    invalid_answers: int = 0  # well-formed answers that could not be read as a label (kept apart, asked again)
    last_error: str | None = None
    failed_keys: set[str] = field(default_factory=set)


class Teacher:
    """One endpoint, one cache, one budget."""

    def __init__(
        self,
        endpoint: Endpoint,
        cache: AnswerCache,
        price: Price,
        max_cost: float | None = None,
        valid: Callable[[dict[str, Any]], bool] | None = None,
    ):
        from openai import AsyncOpenAI

        self.endpoint = endpoint
        self.cache = cache
        self.price = price
        self.max_cost = max_cost
        self.tally = Tally()
        self.valid = valid  # whether an answer can be read as a label (label.py knows the labels)
        self.mode_note: str | None = None  # set when the probes chose constrained JSON output
        # Estimated vs actual cost of answered requests: the budget check scales its estimate by the
        # observed ratio, so a tokenizer that counts more than ~4 chars/token cannot overshoot the cap.
        self._estimated = self._actual = 0.0
        self.prefix: tuple[str, list[int]] | None = None  # (the prompts' shared text, its token ids): use_token_prefix
        self.client = AsyncOpenAI(
            base_url=endpoint.base_url,
            api_key=endpoint.api_key,
            timeout=endpoint.timeout,
            max_retries=endpoint.max_retries,
        )

    def scrub(self, text: str) -> str:
        """Error text goes to metrics.json and the terminal: never let the API key ride along."""
        key = self.endpoint.api_key
        return redact(text.replace(key, "***") if key and len(key) > 3 else text)

    def key(self, request: dict[str, Any]) -> str:
        return request_key(self.endpoint.teacher_id, {"kind": self.endpoint.kind, "v": P.TEMPLATE_VERSION, **request})

    async def use_token_prefix(self, prefix: str, sample: str) -> bool:
        """Send `prefix` (the text every completion prompt starts with) as token ids from now on, when the server
        is llama.cpp and its tokens for prefix + rest are exactly its tokens for the prefix, then the rest.

        llama.cpp tokenizes the whole prompt on every request even where its cache already holds the prefix:
        ~7 ms of server CPU a request for the embedded teacher's ~200-token prefix, 3-4% of a short sentence's
        cost (README, Labeling speed). The cache key is still the request as text, so answers stay shared."""
        import httpx

        if not sample.startswith(prefix):
            return False
        root = self.endpoint.base_url.rstrip("/").removesuffix("/v1")
        try:
            # A short timeout: a server that ignores /tokenize must not hold up the run's start.
            auth = {"Authorization": f"Bearer {self.endpoint.api_key}"} if self.endpoint.api_key else {}
            async with httpx.AsyncClient(timeout=min(5.0, self.endpoint.timeout), headers=auth) as http:
                async def tokens(text: str, special: bool) -> list[int]:
                    r = await http.post(f"{root}/tokenize", json={"content": text, "add_special": special})
                    r.raise_for_status()
                    return [int(t) for t in r.json()["tokens"]]

                head, tail, whole = await tokens(prefix, True), await tokens(sample[len(prefix):], False), await tokens(sample, True)
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            return False  # not llama.cpp, or an older one: prompts go as text
        if head + tail != whole:
            return False
        self.prefix = (prefix, head)
        return True

    async def _call(self, request: dict[str, Any]) -> dict[str, Any]:
        body = dict(request)
        json_mode = is_json_request(body)
        prompt = body.get("prompt")
        if self.prefix and isinstance(prompt, str) and prompt.startswith(self.prefix[0]):
            # llama.cpp takes a prompt of token ids and text mixed; only the first part gets the BOS token.
            body["prompt"] = [*self.prefix[1], prompt[len(self.prefix[0]) :]]
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

    def _over_budget(self, request: dict[str, Any], reserved: float = 0.0) -> bool:
        return self.max_cost is not None and self.tally.cost_usd + reserved + self.estimate_cost(request) > self.max_cost

    async def preflight(self, request: dict[str, Any]) -> tuple[dict[str, Any] | None, bool]:
        """Probe the teacher before the run (the calibration input): fail fast and clearly when it can't
        work, and decide the scoring mode. Returns (the probe's answer with logprobs or None, json_mode).

        A transient fault (a malformed body, a 5xx or a timeout after the client's retries) never decides
        the mode: only well-formed replies count, and constrained JSON output is chosen only when
        NO_LOGPROBS_AGREE of them agree that the server returns no logprobs. Only an answer with logprobs
        is cached.
        """
        import openai

        key = self.key(request)
        cached = self.cache.get(key)
        if cached is not None and cached.get("top"):
            return cached, False
        url = redact_url(self.endpoint.base_url)
        without, faults = 0, []
        for _ in range(PROBES):
            if self._over_budget(request):
                raise BadInput(
                    f"--max-cost {self.max_cost:g} does not cover even the first request (~${self.estimate_cost(request):.6f}); "
                    "raise it"
                )
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
            except (openai.APIError, ValueError) as e:  # 5xx after retries, a malformed body: try again
                faults.append(f"{type(e).__name__}: {self.scrub(_short(e))}")
                continue
            self._account(answer, request)
            if answer.get("top"):
                self.cache.put(key, answer)
                return answer, False
            without += 1
            if without >= NO_LOGPROBS_AGREE:
                self.mode_note = (
                    f"the teacher at {url} returned no log-probabilities on {without} of {without + len(faults)} "
                    "probes: labels come from constrained JSON output, with no probabilities (no soft labels, no calibration)"
                )
                return None, True
        raise TeacherUnavailable(
            f"the teacher at {url} gave no usable answer to {PROBES} probes (last: {faults[-1] if faults else 'no logprobs'}); "
            "check the server, then run again"
        )

    async def ask_all(
        self, jobs: list[tuple[str, dict[str, Any]]], concurrency: int, on_answer: Callable[[str], None]
    ) -> None:
        """Ask every (key, request); store each answer as it arrives; stop launching at the budget.

        A malformed body is asked again at once (up to MALFORMED_RETRIES times, on top of the client's own
        retries of 429/5xx/timeouts); a well-formed answer that `valid` rejects is kept apart in the cache
        (for inspection, asked again on later runs up to the cache's cap) and asked once more now.
        """
        queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        for job in jobs:
            queue.put_nowait(job)
        reserved = 0.0  # estimated cost of requests in flight

        async def ask(key: str, request: dict[str, Any]) -> None:
            nonlocal reserved
            malformed = invalid = 0
            while True:
                if self._over_budget(request, reserved):
                    self.tally.stopped_by_budget = True
                    return
                estimate = self.estimate_cost(request)
                reserved += estimate
                try:
                    answer = await self._call(request)
                except Exception as e:  # after the client's own retries: count it, keep going
                    if _is_malformed(e) and malformed < MALFORMED_RETRIES:
                        malformed += 1
                        continue
                    self.tally.errors += 1
                    self.tally.failed_keys.add(key)
                    self.tally.last_error = f"{type(e).__name__}: {self.scrub(_short(e))}"
                    return
                finally:
                    reserved -= estimate
                self._account(answer, request)
                if self.valid is None or self.valid(answer):
                    self.cache.put(key, answer)
                    return
                self.tally.invalid_answers += 1
                attempts = self.cache.put_invalid(key, answer)
                if invalid >= 1 or attempts >= INVALID_ATTEMPTS_CAP:
                    return
                invalid += 1

        async def worker() -> None:
            while not queue.empty() and not self.tally.stopped_by_budget:
                key, request = queue.get_nowait()
                await ask(key, request)
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


def _is_malformed(e: BaseException) -> bool:
    """A reply that arrived but does not parse (the client's retries never see these)."""
    import openai

    return isinstance(e, (ValueError, openai.APIResponseValidationError))


def _short(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return text[:300]
