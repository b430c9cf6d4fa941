"""What docqa asks an OpenAI-compatible server besides completions: its settings, window, rope, build, tokenizer
and chat template, each from the endpoint the server has (vLLM, SGLang, llama.cpp's server, llama-cpp-python's) and a
fallback where it has none (:mod:`.served` describes the routes). Split from the generator, which sends the
completions, retries them and judges how they ended: this module only discovers and tokenizes.

Every request goes through the generator's :class:`~.served_calls.Gate`, tokenize calls included:
llama-cpp-python's server, at its defaults, cuts a streaming answer short when any request arrives.
"""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError, ModelLoadError, ServerError, ServerUnreachable, first_line
from .base import GeneratorConfig, render_chat
from .served_calls import Gate


class ServerEndpoints:
    """The server's non-completion endpoints for one served model (``entry``: its ``/v1/models`` record)."""

    def __init__(self, base_url: str, model_name: str, entry: dict[str, Any], config: GeneratorConfig, key: str,
                 gate: Gate):
        import httpx

        self.base_url, self.model_name, self.entry, self.config, self.gate = base_url, model_name, entry, config, gate
        self.root = base_url[: -len("/v1")] if base_url.endswith("/v1") else base_url
        self._http = httpx.Client(timeout=min(60.0, config.request_timeout),
                                  headers={"Authorization": f"Bearer {key}"})
        self.props = self.get("/props") or {}  # llama.cpp's server settings (window, rope); {} elsewhere
        self.local_tok = _local_tokenizer(config.tokenizer) if config.tokenizer else None
        self.tok_route = self._find_tokenize_route()
        self._bos_artifact = self._detect_bos()

    # --------------------------------------------------------------------------------------------- requests
    def get(self, path: str) -> dict | None:
        try:
            r = self._http.get(self.root + path)
            return r.json() if r.status_code == 200 else None
        except Exception:  # noqa: BLE001 - an optional endpoint: absent is an answer
            return None

    def post(self, path: str, body: dict) -> dict | None:
        ticket = self.gate.enter()
        try:
            r = self._http.post(self.root + path, json=body)
            return r.json() if r.status_code == 200 else None
        except ValueError:
            return None
        except Exception as e:  # noqa: BLE001 - connection failures are the server's, said in one line
            raise ServerUnreachable(f"The server at {self.root} stopped answering ({type(e).__name__}: "
                                    f"{str(e)[:120]}). Restart it; docqa eval --resume completes a run.") from e
        finally:
            self.gate.leave(ticket)

    # --------------------------------------------------------------------------------------------- settings
    def parallel(self) -> int | None:
        """Requests the server runs at once, where it says: llama.cpp's ``/props`` ``total_slots`` (or its
        ``/slots`` list); None where it does not (vLLM and SGLang batch continuously; llama-cpp-python runs one at
        a time and says nothing: its interruptions are caught on the first cut answer instead)."""
        slots = self.props.get("total_slots")
        if isinstance(slots, int) and slots > 0:
            return slots
        listed = self.get("/slots")
        return len(listed) if isinstance(listed, list) and listed else None

    def build(self) -> str | None:
        """The server's build or version where it reports one: llama.cpp's ``/props`` build_info, vLLM's
        ``/version``, a FastAPI server's ``/openapi.json`` title and version (llama-cpp-python's)."""
        build = self.props.get("build_info")
        if not build:
            version = self.get("/version")
            if version and version.get("version"):
                build = f"vllm {version['version']}"
        if not build:
            api = self.get("/openapi.json") or {}
            info = api.get("info") or {}
            if info.get("version"):
                build = f"{info.get('title', 'server')} {info['version']}".strip()
        return build or None

    def window(self) -> tuple[int, str]:
        """The context window and where it came from: ``--context-window`` always wins, then vLLM's
        ``max_model_len``, then llama.cpp's ``n_ctx``."""
        if self.config.context_window:
            return int(self.config.context_window), "--context-window"
        if self.entry.get("max_model_len"):
            return int(self.entry["max_model_len"]), "server (/v1/models max_model_len)"
        props = self.props
        n_ctx = props.get("n_ctx") or (props.get("default_generation_settings") or {}).get("n_ctx")
        if n_ctx:
            return int(n_ctx), "server (/props n_ctx)"
        raise ModelLoadError(f"The server at {self.base_url} does not report its context window (llama-cpp-python's "
                             f"does not). Pass --context-window N, the context size the server was started with "
                             f"(its --n_ctx).")

    def rope_info(self) -> dict[str, Any]:
        """What the server says about its rope, where it says anything (for the long-context report)."""
        info: dict[str, Any] = {}
        props, entry = self.props, self.entry
        for k in ("rope_scaling", "rope_parameters", "rope_freq_base", "rope_freq_scale", "n_ctx_train"):
            for src in (entry, entry.get("meta") or {}, props, props.get("default_generation_settings") or {}):
                if k in src:
                    info[k] = src[k]
        return info

    # --------------------------------------------------------------------------------------------- tokens
    def _find_tokenize_route(self) -> str | None:
        probe = "Hello world"
        routes = [("/tokenize", {"model": self.model_name, "prompt": probe, "add_special_tokens": False}, "vllm"),
                  ("/tokenize", {"content": probe, "add_special": False}, "llamacpp"),
                  ("/extras/tokenize", {"model": self.model_name, "input": probe}, "llamacpp-python")]
        for path, body, name in routes:
            out = self.post(path, body)
            if out and isinstance(out.get("tokens"), list):
                return name
        if self.local_tok is not None:
            return None
        raise ModelLoadError(f"The server at {self.base_url} has no tokenize endpoint docqa knows. Pass --tokenizer "
                             f"with the served model's HF tokenizer (an HF id or local folder).")

    def _detect_bos(self) -> int | None:
        """A token the server's tokenizer prepends to every text (llama-cpp-python adds BOS), or None."""
        if self.tok_route is None:
            return None
        a, b = self._server_encode("a"), self._server_encode("b")
        return a[0] if len(a) > 1 and len(b) > 1 and a[0] == b[0] else None

    def _server_encode(self, text: str) -> list[int]:
        route = self.tok_route
        if route == "vllm":
            out = self.post("/tokenize", {"model": self.model_name, "prompt": text, "add_special_tokens": False})
        elif route == "llamacpp":
            out = self.post("/tokenize", {"content": text, "add_special": False})
        else:
            out = self.post("/extras/tokenize", {"model": self.model_name, "input": text})
        if not out or "tokens" not in out:
            raise ServerError(f"The server at {self.root} did not tokenize a text of {len(text)} characters.")
        return [t if isinstance(t, int) else t.get("id") for t in out["tokens"]]

    def encode(self, text: str) -> list[int]:
        if not text:
            return []
        if self.tok_route is None:
            return list(self.local_tok(text, add_special_tokens=False)["input_ids"])
        ids = self._server_encode(text)
        return ids[1:] if self._bos_artifact is not None and ids and ids[0] == self._bos_artifact else ids

    def decode(self, ids: list[int]) -> str:
        if not ids:
            return ""
        if self.tok_route is None:
            return self.local_tok.decode(ids, skip_special_tokens=False)
        route = self.tok_route
        if route == "vllm":
            out = self.post("/detokenize", {"model": self.model_name, "tokens": list(ids)})
            text = out.get("prompt") if out else None
        elif route == "llamacpp":
            out = self.post("/detokenize", {"tokens": list(ids)})
            text = out.get("content") if out else None
        else:
            out = self.post("/extras/detokenize", {"model": self.model_name, "tokens": list(ids)})
            text = out.get("text") if out else None
        if text is None:
            raise ServerError(f"The server at {self.root} did not detokenize {len(ids)} tokens.")
        return text

    def chat(self, system: str, user: str) -> str:
        """The chat-templated prompt, ending where the assistant's answer begins: from ``--tokenizer`` when given,
        else llama.cpp's ``/apply-template``, else vLLM's / SGLang's ``/tokenize`` with messages."""
        messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
        if self.local_tok is not None:
            return render_chat(self.local_tok, system, user)
        out = self.post("/apply-template", {"messages": messages})  # llama.cpp's server
        if out and isinstance(out.get("prompt"), str):
            return out["prompt"]
        out = self.post("/tokenize", {"model": self.model_name, "messages": messages,
                                      "add_generation_prompt": True})  # vLLM / SGLang
        if out and isinstance(out.get("tokens"), list):
            return self.decode(out["tokens"])
        raise ConfigError(f"The server at {self.base_url} cannot render the chat template for docqa. Pass "
                          f"--tokenizer with the served model's HF tokenizer (an HF id, a local folder, or an embedded "
                          f"alias such as smollm2).")


def _local_tokenizer(name: str):
    from ..paths import quiet_transformers
    from .gguf import resolve_model

    quiet_transformers()
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(resolve_model(name, "--tokenizer"))
    except Exception as e:  # noqa: BLE001 - any load failure is one line
        raise ModelLoadError(f"Could not load --tokenizer '{name}': {first_line(e)}.") from e
