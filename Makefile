# photoseek: `make help` lists the targets.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATA ?= demo-data
# The dev/CI machine has torch 2.14.1 / torchvision 0.29.1 on local disk; pin them so pip never
# fetches a multi-GB build from the index.
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1
EXTRAS ?= cpu,heif,raw,ray,dev

.PHONY: help install system-deps test lint demo demo-library toy-clip toy-accuracy bench clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(BIN)/photoseek: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH_PINS)
	$(BIN)/pip install -q -e ".[$(EXTRAS)]" $(TORCH_PINS)
	touch $@

install: $(BIN)/photoseek  ## create .venv and install photoseek with its CPU, test and format extras

system-deps:  ## Debian packages for the tests: headless Chromium and its driver; strace (crash tests)
	@if ! command -v chromium >/dev/null 2>&1 || ! command -v strace >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -q && apt-get install -y -q chromium chromium-driver strace; \
	  else sudo apt-get update -q && sudo apt-get install -y -q chromium chromium-driver strace; fi; fi

lint: install  ## ruff over the code
	$(BIN)/ruff check indexer searchd generation tests bench migrations

test: install system-deps  ## install everything, then lint and run the test suite
	$(BIN)/ruff check indexer searchd generation tests bench migrations
	$(BIN)/python -m pytest -q -p no:cacheprovider

demo: install  ## build a demo library, index it with the toy CLIP, then serve the page on :8765
	$(BIN)/photoseek --data-dir $(DATA) demo-library $(DATA)/library --n 400 --seed 1
	$(BIN)/photoseek --data-dir $(DATA) --model toy index $(DATA)/library
	$(BIN)/photoseek --data-dir $(DATA) --model toy search "a red circle" -n 5
	$(BIN)/photoseek --data-dir $(DATA) --model toy serve --port 8765

toy-clip: install  ## retrain the toy CLIP checkpoint (about 6-10 min on 2 cores)
	$(BIN)/python -m indexer.toyclip.train

toy-accuracy: install  ## zero-shot accuracy of the toy CLIP on freshly generated images
	$(BIN)/python -m indexer.toyclip.evaluate

bench: install  ## CPU benchmarks; appends to bench/RESULTS.md
	$(BIN)/python -m bench.run --device cpu

clean:  ## remove the demo data and caches (keeps .venv)
	rm -rf $(DATA) test-artifacts .pytest_cache .ruff_cache
