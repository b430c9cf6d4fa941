"""A proxy in front of a real model server that misbehaves on cue, for tests and benchmarks of served-model faults.

Every request is forwarded to ``upstream`` unchanged, except the completions named by ``faults``: the n-th POST to
``/v1/completions`` (counted from 0) gets the fault at ``faults[n]``:

- ``"429"`` / ``"503"``: that status with ``Retry-After: 1``, nothing forwarded;
- ``"500"``: that status without Retry-After;
- ``"cut"``: the server's stream forwarded up to its first text chunk, then ``[DONE]`` with no finish reason (what
  llama-cpp-python's server sends when another request interrupts a streaming one);
- ``"drop"``: the first text chunk, then the connection closed mid-stream (a server killed while answering);
- ``"abort"``: the first text chunk, then a chunk whose finish_reason is ``abort`` (llama.cpp on a cancelled slot);
- ``"hang"``: nothing for ``hang_s`` seconds, then forwarded (a request that outlives the client's timeout).

``props``, when given, is served at ``/props`` (what llama.cpp's own server reports there, e.g. its slots), which
llama-cpp-python's server does not have. The answers themselves are the real server's.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx


class FaultProxy:
    def __init__(self, upstream: str, faults: dict[int, str] | None = None, props: dict | None = None,
                 hang_s: float = 3.0):
        upstream = upstream.rstrip("/")
        self.upstream = upstream[: -len("/v1")] if upstream.endswith("/v1") else upstream  # paths keep their /v1
        self.faults = dict(faults or {})
        self.props, self.hang_s = props, hang_s
        self.completions = 0
        self.seen: list[str] = []  # the fault (or "ok") each completion got
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                proxy._forward(self, None)

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                proxy._forward(self, self.rfile.read(length))

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _fault(self, path: str) -> str:
        if not path.endswith("/v1/completions"):
            return "ok"
        with self._lock:
            n = self.completions
            self.completions += 1
            fault = self.faults.get(n, "ok")
            self.seen.append(fault)
            return fault

    def _forward(self, h: BaseHTTPRequestHandler, body: bytes | None) -> None:
        if body is None and h.path == "/props" and self.props is not None:
            payload = json.dumps(self.props).encode()
            h.send_response(200)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(payload)))
            h.end_headers()
            h.wfile.write(payload)
            return
        fault = self._fault(h.path) if body is not None else "ok"
        if fault == "hang":
            time.sleep(self.hang_s)
            fault = "ok"
        if fault in ("429", "503", "500"):
            payload = json.dumps({"error": {"message": f"injected {fault}", "code": int(fault)}}).encode()
            h.send_response(int(fault))
            if fault != "500":
                h.send_header("Retry-After", "1")
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(payload)))
            h.end_headers()
            h.wfile.write(payload)
            return
        headers = {k: v for k, v in h.headers.items() if k.lower() not in ("host", "content-length", "connection")}
        with httpx.Client(timeout=600) as client, client.stream(
                h.command, self.upstream + h.path, content=body, headers=headers) as r:
            streaming = "text/event-stream" in r.headers.get("content-type", "")
            h.send_response(r.status_code)
            h.send_header("Content-Type", r.headers.get("content-type", "application/json"))
            if not streaming:
                data = r.read()
                h.send_header("Content-Length", str(len(data)))
                h.end_headers()
                h.wfile.write(data)
                return
            h.send_header("Connection", "close")
            h.end_headers()
            for line in r.iter_lines():
                h.wfile.write((line + "\n").encode())
                h.wfile.flush()
                if fault != "ok" and line.startswith("data: {") and '"text": "' in line and '"text": ""' not in line:
                    if fault == "cut":
                        h.wfile.write(b"\ndata: [DONE]\n\n")
                    elif fault == "abort":
                        chunk = json.loads(line[len("data: "):])
                        chunk["choices"][0].update(text="", finish_reason="abort")
                        h.wfile.write(f"\ndata: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode())
                    h.wfile.flush()
                    h.close_connection = True
                    return  # "drop": the connection closes with the stream unfinished
