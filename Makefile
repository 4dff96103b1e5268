# Every target builds what it needs; `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RUST_SOURCES := $(shell find crates -name '*.rs' -o -name Cargo.toml) Cargo.toml

.DEFAULT_GOAL := help

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml $(RUST_SOURCES)
	$(BIN)/pip install -q -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install treadle with its dev tools (builds the Rust core)

build-dev: $(STAMP) ## rebuild the Rust extension in place after a change under crates/
	VIRTUAL_ENV=$(abspath $(VENV)) $(BIN)/maturin develop --release -q

format: $(STAMP) ## format Python and Rust
	$(BIN)/ruff format python tests bench loadtest
	$(BIN)/ruff check --fix python tests bench loadtest
	cargo fmt --all

lint: $(STAMP) ## ruff, mypy, stubtest of _core.pyi, cargo fmt --check, clippy -D warnings
	$(BIN)/ruff check python tests bench loadtest
	$(BIN)/mypy python/treadle
	$(BIN)/python -m mypy.stubtest treadle._core
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings

test: $(STAMP) ## cargo test, then pytest (real PostgreSQL and Redis: embedded unless TREADLE_TEST_*_URL)
	cargo test --workspace --quiet
	$(BIN)/pytest

bench: $(STAMP) ## micro-benchmarks and the side-by-side HTTP comparison (needs wrk)
	$(BIN)/pytest bench --benchmark-enable --benchmark-only -p no:randomly
	$(BIN)/python bench/http_compare.py

serve: $(STAMP) ## run treadle on :3001 (embedded PostgreSQL and Valkey unless TREADLE_*_URL)
	$(BIN)/treadle serve

.PHONY: help install build-dev format lint test bench serve
