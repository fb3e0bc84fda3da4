# Every target creates the virtualenv on first use, so a fresh clone needs only Python and make.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: all venv test lint demo bench soak prometheusrule clean

all: lint test

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,lint]'
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

demo: $(STAMP)
	$(BIN)/veeam-em-exporter --demo

bench: $(STAMP)
	$(BIN)/python -m bench

# Minutes, not seconds, so not part of `test`: docs/reliability.md.
soak: $(STAMP)
	$(BIN)/python -m bench.soak

# deploy/kubernetes/prometheusrule.yaml from prometheus/alerts.yml; a test fails until it is rerun.
prometheusrule: $(STAMP)
	$(BIN)/python -m tools.prometheusrule

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
