# Every target creates the virtualenv on first use, so a fresh clone needs only Python and make.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
RELEASE_STAMP := $(VENV)/.installed-release
BENCH_STAMP := $(VENV)/.bench-installed

.PHONY: all venv test lint demo bench soak dist distcheck prometheusrule clean

all: lint test

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,lint]'
	touch $(STAMP)

venv: $(STAMP)

# build and twine, the `release` extra, on first use of `make dist`.
$(RELEASE_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[test,lint,release]'
	touch $(RELEASE_STAMP)

test: $(STAMP)
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

demo: $(STAMP)
	$(BIN)/veeam-em-exporter --demo

# The peers the bench measures against are an extra of their own, installed only here.
$(BENCH_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[bench]'
	touch $(BENCH_STAMP)

# BENCH_FLAGS=--quick: 1,000 and 10,000 sessions only (docs/performance.md).
bench: $(BENCH_STAMP)
	$(BIN)/python -m bench $(BENCH_FLAGS)

# Minutes, not seconds, so not part of `test`: docs/reliability.md.
soak: $(STAMP)
	$(BIN)/python -m bench.soak

# The sdist, then the wheel built from it (so a file the sdist lacks is missing from the wheel
# too). Old egg-info goes first: setuptools would otherwise reuse its file list.
dist: $(RELEASE_STAMP)
	rm -rf dist build *.egg-info
	$(BIN)/python -m build --outdir dist .

# What CI checks of the release artefacts: twine, the contents, a fresh install that runs.
distcheck: dist
	$(BIN)/python .ci/check_dist.py dist
# deploy/kubernetes/prometheusrule.yaml from prometheus/alerts.yml; a test fails until it is rerun.
prometheusrule: $(STAMP)
	$(BIN)/python -m tools.prometheusrule

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
