"""The web page and the Node service of examples/, run the way an app runs them, against a fresh export.

A tiny BERT classifier (trained for a few steps on the toy task, seconds) is exported to ONNX; then
- examples/web is served on 127.0.0.1 and driven in headless Chromium (Debian's package, through
  playwright-core): five texts typed into the page must get the labels and probabilities that the Python
  runtime gives; the page's screenshot and per-text latency land in test-artifacts/;
- examples/node's service answers the same five texts alike, and bad input with 400 / 413.

What this needs beyond Python (chromium, the examples' npm packages) is installed by .ci/setup-browser,
which the `examples_ready` fixture runs when something is missing. The tests skip, saying why, only when
that install fails.

    OMP_NUM_THREADS=1 .venv/bin/python -m pytest tests/integration/test_examples_web_node.py -q
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.helpers import make_train_run, toy_rows

REPO = Path(__file__).resolve().parents[2]
WEB = REPO / "examples" / "web"
NODE = REPO / "examples" / "node"
ARTIFACTS = REPO / "test-artifacts"

# Plain, accented + emoji, Cyrillic, short, and one longer than the model's max_length (truncation).
TEXTS = [
    "the pasta was delicious",
    "our waiter was rude and the soup was cold",
    "Café au lait, très bon, service parfait 😀",
    "Обслуживание было ужасным",
    " ".join(["the dessert tasted wonderful, the room felt lovely"] * 30),
]


# --- what the examples need ------------------------------------------------------------------------------


def _missing() -> list[str]:
    """What .ci/setup-browser would install: tools not on PATH, node_modules absent or older than the lockfile."""
    missing = [tool for tool in ("node", "npm", "chromium") if shutil.which(tool) is None]
    for d in (WEB, NODE):
        installed = d / "node_modules" / ".package-lock.json"  # npm writes it on every install
        if not installed.is_file() or installed.stat().st_mtime < (d / "package-lock.json").stat().st_mtime:
            missing.append(f"{d.relative_to(REPO)}/node_modules")
    return missing


@pytest.fixture(scope="session")
def examples_ready() -> str:
    """The path of Chromium, after installing what is missing with .ci/setup-browser; skip only if that fails."""
    missing = _missing()
    if missing:
        run = subprocess.run(
            ["bash", str(REPO / ".ci" / "setup-browser")], capture_output=True, text=True, timeout=900
        )
        missing = _missing()
        if run.returncode != 0 or missing:
            tail = (run.stderr or run.stdout).strip().splitlines()[-3:]
            pytest.skip(f"cannot install what the examples need (missing: {', '.join(missing)}): {' | '.join(tail)}")
    return shutil.which("chromium")


# --- a tiny exported model ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def export_dir(tiny_bert_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`distill export --onnx`, through the CLI, of the tiny BERT after a few optimizer steps on the toy
    task: unlike a random head, its labels then depend on the text."""
    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification
    from typer.testing import CliRunner

    from distill.cli import app

    labels = ["negative", "positive"]
    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(tiny_bert_dir)
    model = BertForSequenceClassification.from_pretrained(
        tiny_bert_dir, num_labels=2, id2label=dict(enumerate(labels)), label2id={lab: i for i, lab in enumerate(labels)}
    )
    rows = toy_rows(64)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for step in range(24):
        batch = rows[(step * 16) % 64 :][:16]
        enc = tok([r["text"] for r in batch], padding=True, return_tensors="pt")
        model(**enc, labels=torch.tensor([labels.index(r["label"]) for r in batch])).loss.backward()
        opt.step()
        opt.zero_grad()
    model_dir = tmp_path_factory.mktemp("tiny-trained")
    model.save_pretrained(model_dir, safe_serialization=True)
    tok.save_pretrained(model_dir)
    run = make_train_run(tmp_path_factory.mktemp("train-run"), model_dir, toy_rows(16, seed=1), max_length=64)

    out = tmp_path_factory.mktemp("export") / "run"
    args = ["export", str(run), "--onnx", "--out", str(out), "--latency-texts", "4", "--threads", "1"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return out


def distill_predict(export: Path, texts: list[str], model_file: str | None = None) -> list[dict]:
    """What `distill predict` says for these texts (its probabilities are rounded to 6 decimals). One text
    per model call, as the apps run them: in a batch, padding moves int8 probabilities by ~4e-5."""
    cmd = [sys.executable, "-m", "distill.cli", "predict", str(export), "--batch-size", "1"]
    cmd += [a for t in texts for a in ("--text", t)]
    run = subprocess.run(cmd + (["--model", model_file] if model_file else []), capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    return [json.loads(line) for line in run.stdout.splitlines()]


def python_ids(export: Path, texts: list[str]) -> list[list[int]]:
    """The token ids distill's runtime feeds the model, one text at a time (so without padding)."""
    from distill.runtime import Predictor

    predictor = Predictor(export)
    return [predictor.encode([t])[0]["input_ids"][0].tolist() for t in texts]


def assert_same(got: list[dict], want: list[dict], atol: float, where: str) -> None:
    assert len(got) == len(want), f"{where}: {len(got)} answers for {len(want)} texts"
    for g, w in zip(got, want):
        assert g["label"] == w["label"], f"{where}: {w['text'][:40]!r}: label {g['label']} != {w['label']}"
        assert g["probs"].keys() == w["probs"].keys() and g["truncated"] == w["truncated"]
        diff = max(abs(g["probs"][k] - w["probs"][k]) for k in w["probs"])
        assert diff <= atol, f"{where}: {w['text'][:40]!r}: probabilities differ by {diff:.2e} (> {atol})"


# --- servers ----------------------------------------------------------------------------------------------


class NodeProcess:
    """A Node server started for a test; waits for its 'listening' line and reads the URL from it."""

    def __init__(self, args: list[str], cwd: Path, ready_word: str, timeout: float = 60):
        self.proc = subprocess.Popen(
            ["node", *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.lines: list[str] = []
        watchdog = threading.Timer(timeout, self.proc.kill)  # a server that never says it listens
        watchdog.start()
        try:
            for line in self.proc.stdout:
                self.lines.append(line)
                if line.startswith(ready_word) and "http://" in line:
                    self.url = next(w for w in line.split() if w.startswith("http://")).rstrip("/")
                    self.host, port = self.url.removeprefix("http://").rsplit(":", 1)
                    self.port = int(port)
                    # Keep reading its output so a chatty server never blocks on a full pipe.
                    threading.Thread(target=self.lines.extend, args=(self.proc.stdout,), daemon=True).start()
                    return
        finally:
            watchdog.cancel()
        self.stop()
        raise AssertionError(f"node {' '.join(args)} did not start:\n{''.join(self.lines)}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


# --- the web page -------------------------------------------------------------------------------------------


def test_web_page_in_chromium_matches_python(examples_ready: str, export_dir: Path, tmp_path: Path) -> None:
    texts_file, out, shots = tmp_path / "texts.json", tmp_path / "pages.json", tmp_path / "shots"
    texts_file.write_text(json.dumps(TEXTS, ensure_ascii=False), encoding="utf-8")
    web = NodeProcess(["serve.mjs", str(export_dir), "--port", "0"], cwd=WEB, ready_word="serving")
    try:
        # The page's default model (int8, as labels.json says), then the fp32 one through ?file=.
        urls = [f"{web.url}/", f"{web.url}/?file=model.onnx"]
        run = subprocess.run(
            ["node", "e2e/drive.mjs", "--texts", str(texts_file), "--out", str(out), "--screenshots", str(shots)]
            + [arg for url in urls for arg in ("--url", url)],
            cwd=WEB, capture_output=True, text=True, timeout=240, env={**os.environ, "CHROMIUM": examples_ready},
        )
    finally:
        web.stop()
    assert run.returncode == 0, f"driving the page failed:\n{run.stdout}\n{run.stderr}"
    int8, fp32 = json.loads(out.read_text(encoding="utf-8"))

    assert int8["model"] == "model.int8.onnx" and fp32["model"] == "model.onnx"
    # The JavaScript tokenizer (with our truncation) must give exactly Python's ids, whatever the model says.
    assert int8["ids"] == python_ids(export_dir, TEXTS)
    assert int8["rows"] == len(TEXTS) and int8["answer"] == int8["results"][-1]["label"]
    # fp32 in WebAssembly matches native onnxruntime to float rounding (predict rounds to 1e-6); the int8
    # kernels differ a little between WebAssembly and x86 (measured 2e-4 in probability).
    assert_same(fp32["results"], distill_predict(export_dir, TEXTS, "model.onnx"), atol=1e-5, where="browser fp32")
    assert_same(int8["results"], distill_predict(export_dir, TEXTS), atol=5e-3, where="browser int8")
    assert len({r["label"] for r in int8["results"]}) == 2, "the tiny model should tell these texts apart"

    ARTIFACTS.mkdir(exist_ok=True)
    for name, page in (("int8", int8), ("fp32", fp32)):
        assert Path(page["screenshot"]).stat().st_size > 10_000, "the screenshot is (nearly) empty"
        shutil.copy(page["screenshot"], ARTIFACTS / f"web-page-{name}.png")
        ms = sorted(r["ms"] for r in page["results"])
        page["latency_ms"] = {"median_per_text": ms[len(ms) // 2], "max_per_text": ms[-1], "load": page["loadMs"]}
        (ARTIFACTS / f"web-page-{name}.json").write_text(json.dumps(page, indent=2, ensure_ascii=False))


# --- the Node service -----------------------------------------------------------------------------------------


def post(svc: NodeProcess, body: bytes, path: str = "/predict", method: str = "POST", chunked: bool = False):
    conn = http.client.HTTPConnection(svc.host, svc.port, timeout=30)
    try:
        if chunked:
            conn.request(method, path, body=iter([body[i : i + 1024] for i in range(0, len(body), 1024)]),
                         encode_chunked=True, headers={"content-type": "application/json"})
        else:
            conn.request(method, path, body=body, headers={"content-type": "application/json"})
        res = conn.getresponse()
        return res.status, json.loads(res.read())
    finally:
        conn.close()


@pytest.fixture(scope="module")
def node_service(examples_ready: str, export_dir: Path):
    svc = NodeProcess(
        ["server.mjs", str(export_dir), "--port", "0", "--threads", "1", "--max-body", "4096"],
        cwd=NODE, ready_word="listening",
    )
    yield svc
    svc.stop()


def test_node_service_answers_like_python(node_service: NodeProcess, export_dir: Path) -> None:
    got = []
    for text in TEXTS:
        status, answer = post(node_service, json.dumps({"text": text}).encode())
        assert status == 200, answer
        assert set(answer) == {"label", "probs", "truncated"}
        got.append({"text": text, **answer})
    # Same native int8 kernels as Python's onnxruntime: equal to float rounding.
    assert_same(got, distill_predict(export_dir, TEXTS), atol=1e-5, where="node service")


@pytest.mark.parametrize(
    "body, status, message",
    [
        (b'{"txt": "hello"}', 400, r'missing "text"'),
        (b'{"text": 42}', 400, r'"text" must be a string, got number'),
        (b'{"text": ["a", "b"]}', 400, r'"text" must be a string, got array'),
        (b'{"text": null}', 400, r'"text" must be a string, got null'),
        (b'["hello"]', 400, r"body must be a JSON object"),
        (b"text=hello", 400, r"body is not valid JSON"),
        (json.dumps({"text": "x" * 10_000}).encode(), 413, r"body too large: the limit is 4096 bytes"),
    ],
)
def test_node_service_refuses_bad_input(node_service: NodeProcess, body: bytes, status: int, message: str) -> None:
    got_status, answer = post(node_service, body)
    assert got_status == status and re.search(message, answer["error"]), (got_status, answer)


def test_node_service_limits_a_chunked_body_and_keeps_serving(node_service: NodeProcess) -> None:
    # No Content-Length: the limit must hold while the body streams in.
    status, answer = post(node_service, json.dumps({"text": "y" * 20_000}).encode(), chunked=True)
    assert status == 413 and "body too large" in answer["error"]
    assert post(node_service, b"", method="GET")[0] == 405
    assert post(node_service, b"", path="/nope")[0] == 404
    status, health = post(node_service, b"", path="/health", method="GET")
    assert status == 200 and health["labels"] == ["negative", "positive"] and health["model"] == "model.int8.onnx"
