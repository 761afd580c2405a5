"""A scriptable fake OpenAI-compatible server on 127.0.0.1, for the fault cases a real server cannot
produce on demand (429 with Retry-After, 500, a hang past the timeout, malformed JSON, no logprobs) and
for the labeling benchmark (a fixed delay per request).

Faults: `fail` queues them per text; `fault_rate` draws them at random (seeded) from `faults`:
"429" (with Retry-After), "500", "hang" (past the timeout), "reset" (connection dropped), "malformed" (a
body that does not parse), "junk" (well-formed, no label), "nolp" (no logprobs, the text is the label).

The "teacher" it plays is simple and deterministic: a text with a word from NEGATIVE is negative, any
other text positive; with several labels, the first label word found in the text wins.

    with FakeOpenAI(delay=0.01) as server:
        server.base_url          # http://127.0.0.1:PORT/v1
        server.fail["cold"] = ["429", "500"]   # the next two requests whose text contains "cold" fail
                                               # (also "hang", "malformed", "junk", "echo-auth")
        server.requests          # every request body received, in order
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

NEGATIVE = ("cold", "rude", "awful", "terrible", "bland", "dirty", "horrible", "disappointing", "worst", "slow")


class FakeOpenAI:
    def __init__(
        self,
        delay: float = 0.0,
        logprobs: bool = True,
        shape: str = "chat",  # logprobs shape on /completions: "chat" (llama.cpp) or "legacy" (OpenAI, vLLM)
        labels: tuple[str, ...] = ("positive", "negative"),
        hang_seconds: float = 5.0,
        batch_polls: int = 1,  # how many retrieves a batch stays "in_progress"
        fault_rate: float = 0.0,  # share of labeling requests that get a random fault from `faults`
        faults: tuple[str, ...] = ("malformed", "429", "500", "reset", "hang", "junk"),
        seed: int = 0,
        tokenize: bool = False,  # serve llama.cpp's /tokenize (one token per character) and take mixed prompts
    ):
        self.delay = delay
        self.logprobs = logprobs
        self.shape = shape
        self.labels = labels
        self.hang_seconds = hang_seconds
        self.batch_polls = batch_polls
        self.fault_rate = fault_rate
        self.faults = faults
        self.tokenize = tokenize
        self.rng = __import__("random").Random(seed)
        self.answered: list[str] = []  # texts of labeling requests answered with a good (200, well-formed) reply
        self.fail: dict[str, list[str]] = {}  # substring -> queue of faults for requests whose text has it
        self.flip: set[str] = set()  # texts the teacher gets wrong on purpose (the audit must find them)
        self.requests: list[dict[str, Any]] = []
        self.texts: list[str] = []  # the labeled text of each answered (200) labeling request
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> "FakeOpenAI":
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # --- the teacher it plays ------------------------------------------------------------------------

    def teacher_label(self, text: str) -> str:
        """What the fake teacher answers: the true label, except for the texts in `flip`."""
        label = self.true_label(text)
        if text in self.flip:
            label = self.labels[(self.labels.index(label) + 1) % len(self.labels)]
        return label

    def true_label(self, text: str) -> str:
        low = text.lower()
        if self.labels == ("positive", "negative"):
            return "negative" if any(w in low for w in NEGATIVE) else "positive"
        for lab in self.labels:
            if lab.lower() in low:
                return lab
        return self.labels[0]

    @staticmethod
    def text_of(body: dict[str, Any]) -> str:
        if "messages" in body:
            return body["messages"][-1]["content"]
        prompt = body.get("prompt", "")
        if isinstance(prompt, list):  # llama.cpp's mixed prompt: token ids (here, characters) and text
            prompt = "".join(chr(p) if isinstance(p, int) else p for p in prompt)
        m = re.search(r"Text: (.*)\nLabel:\s*$", prompt, re.S)
        return m.group(1) if m else prompt

    def answer(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        text = self.text_of(body)
        label = self.teacher_label(text)
        others = [lab for lab in self.labels if lab != label]
        json_mode = "response_format" in body or "json_schema" in body
        content = json.dumps({"label": label}) if "response_format" in body else (
            json.dumps(label) if json_mode else " " + label
        )
        tops = [(" " + label, -0.1), ("\n", -2.5)] + [(" " + o, -3.0 - i) for i, o in enumerate(others)]
        usage = {"prompt_tokens": max(1, len(json.dumps(body)) // 4), "completion_tokens": 1, "total_tokens": 0}
        lp: Any = None
        if self.logprobs and not json_mode and (body.get("logprobs") or body.get("top_logprobs")):
            if path.endswith("chat/completions") or self.shape == "chat":
                lp = {"content": [{"token": tops[0][0], "logprob": tops[0][1],
                                   "top_logprobs": [{"token": t, "logprob": v} for t, v in tops]}]}
            else:
                lp = {"tokens": [tops[0][0]], "token_logprobs": [tops[0][1]], "top_logprobs": [dict(tops)]}
        if path.endswith("chat/completions"):
            choice = {"index": 0, "message": {"role": "assistant", "content": content}, "logprobs": lp, "finish_reason": "stop"}
            obj = "chat.completion"
        else:
            choice = {"index": 0, "text": content, "logprobs": lp, "finish_reason": "length"}
            obj = "text_completion"
        return {"id": "x-" + uuid.uuid4().hex[:8], "object": obj, "created": int(time.time()), "model": body.get("model", "fake"),
                "choices": [choice], "usage": usage}

    @staticmethod
    def junk(answer: dict[str, Any]) -> dict[str, Any]:
        """A well-formed reply whose next token starts no label."""
        answer["choices"][0]["logprobs"] = {"content": [{"token": " I", "logprob": -0.1,
                                                         "top_logprobs": [{"token": " I", "logprob": -0.1}, {"token": " The", "logprob": -1.0}]}]}
        answer["choices"][0]["text"] = " I think"
        return answer

    def _batch_fault(self, text: str) -> str | None:
        with self.lock:
            for needle, queue in self.fail.items():
                if needle in text and queue:
                    return queue.pop(0)
        return None

    # --- HTTP ------------------------------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None, raw: bytes | None = None) -> None:
                data = raw if raw is not None else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                if path.endswith("/models"):
                    return self._send(200, {"object": "list", "data": [{"id": "fake", "object": "model"}]})
                m = re.search(r"/batches/([\w-]+)$", path)
                if m and m.group(1) in fake.batches:
                    return self._send(200, fake._poll_batch(m.group(1)))
                m = re.search(r"/files/([\w-]+)/content$", path)
                if m and m.group(1) in fake.files:
                    data = fake.files[m.group(1)]
                    self.send_response(200)
                    self.send_header("Content-Type", "application/octet-stream")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                self._send(404, {"error": {"message": f"no route {path}", "type": "not_found"}})

            def do_POST(self) -> None:
                path = self.path.split("?")[0]
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if len(raw) < length:  # the client died mid-request (a kill -9): nothing was asked, record nothing
                    self.close_connection = True
                    return
                if path.endswith("/files"):
                    return self._send(200, fake._store_upload(raw, self.headers.get("Content-Type", "")))
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    return self._send(400, {"error": {"message": "bad json"}})
                if path.endswith("/batches"):
                    return self._send(200, fake._create_batch(body))
                if path == "/tokenize" and fake.tokenize:
                    return self._send(200, {"tokens": [ord(c) for c in body.get("content", "")]})
                if not path.endswith("completions"):
                    return self._send(404, {"error": {"message": f"no route {path}"}})
                with fake.lock:
                    fake.requests.append(body)
                    text = fake.text_of(body)
                    fault = None
                    for needle, queue in fake.fail.items():
                        if needle in text and queue:
                            fault = queue.pop(0)
                            break
                    if fault is None and fake.fault_rate and fake.rng.random() < fake.fault_rate:
                        fault = fake.rng.choice(fake.faults)
                if fake.delay:
                    time.sleep(fake.delay)
                if fault == "429":
                    return self._send(429, {"error": {"message": "rate limited", "type": "rate_limit"}},
                                      {"Retry-After": "0", "retry-after-ms": "50"})
                if fault == "500":
                    return self._send(500, {"error": {"message": "boom", "type": "server_error"}})
                if fault == "echo-auth":  # a server that quotes the credentials it was sent back in its error
                    return self._send(500, {"error": {"message": f"cannot use {self.headers.get('Authorization')}"}})
                if fault == "hang":
                    time.sleep(fake.hang_seconds)
                    return self._send(500, {"error": {"message": "late"}})
                if fault == "malformed":
                    return self._send(200, None, raw=b'{"choices": [ {"text": "positi')
                if fault == "reset":  # the connection drops without a reply
                    self.close_connection = True
                    import socket

                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if fault == "nolp":  # a well-formed reply without logprobs whose text is the label
                    answer = fake.answer(path, body)
                    answer["choices"][0]["logprobs"] = None
                    label = fake.true_label(text)
                    with fake.lock:
                        fake.answered.append(text)
                    if "message" in answer["choices"][0]:
                        answer["choices"][0]["message"]["content"] = label
                    else:
                        answer["choices"][0]["text"] = label
                    return self._send(200, answer)
                if fault == "junk":
                    return self._send(200, fake.junk(fake.answer(path, body)))
                with fake.lock:
                    fake.texts.append(text)
                    fake.answered.append(text)
                self._send(200, fake.answer(path, body))

        return Handler

    # --- Batch API -------------------------------------------------------------------------------------

    def _store_upload(self, raw: bytes, content_type: str) -> dict[str, Any]:
        # multipart/form-data: take the part that holds the JSONL (the one with a filename).
        boundary = content_type.split("boundary=")[-1].encode()
        content = raw
        for part in raw.split(b"--" + boundary):
            if b"filename=" in part:
                content = part.split(b"\r\n\r\n", 1)[1].rsplit(b"\r\n", 1)[0]
        fid = "file-" + uuid.uuid4().hex[:10]
        self.files[fid] = content
        return {"id": fid, "object": "file", "bytes": len(content), "created_at": int(time.time()),
                "filename": "batch.jsonl", "purpose": "batch", "status": "processed"}

    def _create_batch(self, body: dict[str, Any]) -> dict[str, Any]:
        bid = "batch_" + uuid.uuid4().hex[:10]
        lines = [json.loads(x) for x in self.files[body["input_file_id"]].decode().splitlines() if x.strip()]
        self.batches[bid] = {"id": bid, "object": "batch", "endpoint": body["endpoint"], "input_file_id": body["input_file_id"],
                             "completion_window": "24h", "status": "in_progress", "created_at": int(time.time()),
                             "output_file_id": None, "error_file_id": None, "_lines": lines, "_polls": 0,
                             "request_counts": {"total": len(lines), "completed": 0, "failed": 0}}
        return self._public(bid)

    def _poll_batch(self, bid: str) -> dict[str, Any]:
        b = self.batches[bid]
        b["_polls"] += 1
        if b["status"] == "in_progress" and b["_polls"] > self.batch_polls:
            out = []
            for line in b["_lines"]:
                with self.lock:
                    self.requests.append(line["body"])
                    self.texts.append(self.text_of(line["body"]))
                body = self.answer(line["url"], line["body"])
                if self._batch_fault(self.text_of(line["body"])) == "junk":
                    body = self.junk(body)
                out.append(json.dumps({"id": "r", "custom_id": line["custom_id"], "response": {"status_code": 200, "body": body}}))
            fid = "file-" + uuid.uuid4().hex[:10]
            self.files[fid] = ("\n".join(out) + "\n").encode()
            b.update(status="completed", output_file_id=fid,
                     request_counts={"total": len(out), "completed": len(out), "failed": 0})
        return self._public(bid)

    def _public(self, bid: str) -> dict[str, Any]:
        return {k: v for k, v in self.batches[bid].items() if not k.startswith("_")}


if __name__ == "__main__":  # serve by hand: python tests/fake_openai.py [delay]
    import sys

    with FakeOpenAI(delay=float(sys.argv[1]) if len(sys.argv) > 1 else 0.0) as s:
        print(s.base_url, flush=True)
        threading.Event().wait()
