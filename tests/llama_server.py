"""Starting and stopping llama-cpp-python's OpenAI-compatible server on 127.0.0.1, for tests and benchmarks."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request

from docqa.models import embedded_model_path

N_CTX = 8192


def served_config(url: str, **kw):
    """docqa's config for the served SmolLM2: llama-cpp-python's server reports no window and renders no chat
    template, so both are given."""
    from docqa.generators import GeneratorConfig

    return GeneratorConfig(model="openai:smollm2", base_url=url, context_window=N_CTX, tokenizer="smollm2",
                           request_timeout=120, **kw)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int, log, n_ctx: int = N_CTX, extra: tuple[str, ...] = (),
                 interrupt: bool = False) -> subprocess.Popen:
    """The embedded SmolLM2 GGUF served as "smollm2"; returns once /v1/models answers. ``interrupt=True`` keeps the
    server's own default, under which a new request cuts a streaming answer short."""
    gguf = embedded_model_path("smollm2")
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", "smollm2", "--host",
           "127.0.0.1", "--port", str(port), "--n_ctx", str(n_ctx), "--n_threads", "2", "--seed", "0",
           # Its default cuts a streaming answer short whenever another request arrives; docqa runs several.
           *(() if interrupt else ("--interrupt_requests", "False")), *extra]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 180
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"llama_cpp.server exited with {proc.returncode}; see {log.name}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2)
            return proc
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError(f"llama_cpp.server did not answer on port {port} within 180 s")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
