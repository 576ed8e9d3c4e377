# solu-repro: two set-up commands work on a fresh machine.
#   make book   set up, build the data, train the model zoo (SCALE=cpu by default), execute
#               the notebooks at that scale and build the offline HTML book (_build/html)
#   make test   set up, install a headless browser (Debian's chromium and chromium-driver)
#               and run the whole test suite (nbval on every notebook, the book built at scale
#               tiny, the notebooks' widgets worked in JupyterLab)
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
PYTHON ?= $(shell command -v python3.11 || command -v python3)
# Optional: e.g. TORCH_INDEX=https://download.pytorch.org/whl/cpu for the CPU-only wheel.
TORCH_INDEX ?=
VENV ?= .venv
SCALE ?= cpu
BIN := $(VENV)/bin

# The lock (README, "The lock"), written by `make lock`: constraints.txt pins every package
# beneath pyproject.toml's dependencies, its test extra and requirements/setup.in, with PyPI's
# sha256 hashes; requirements/setup.txt (pip, setuptools: the bootstrap) and
# requirements/tl4.txt (TransformerLens 4.3; one constraints file cannot hold two versions of
# transformer-lens) are pinned the same way.
LOCK := constraints.txt
SETUP_LOCK := requirements/setup.txt
TL4_LOCK := requirements/tl4.txt
TORCH_PIN := torch==2.13.0

.PHONY: setup lock test book data zoo benchmark clean-runs clean-book browser

# pip checks every file it downloads here against the lock's hashes (a constraints file with
# hashes turns on its hash-checking mode), except torch's. torch comes first, pinned but
# without a hash and without its dependencies: its file may come from TORCH_INDEX or a local
# wheel, and the CPU-only 2.13.0+cpu build is not on PyPI, so PyPI's hashes cannot cover it.
# pip cannot hash a directory either, so the package is installed editable without its
# dependencies; the line after installs them, and torch's, from the lock. Nothing is built in
# an isolated environment (whose setuptools would be the newest): the package and the two
# sdist-only dependencies (py2store, transformers-stream-generator) are built by the locked
# setuptools. TransformerLens 4.3 goes into $(VENV)/tl4 without dependencies, for the TL 4
# interop tests; the main set meets its requirements (tests/test_environment.py checks).
$(BIN)/.installed: pyproject.toml $(LOCK) $(SETUP_LOCK) $(TL4_LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes -r $(SETUP_LOCK)
	$(BIN)/pip install --quiet --no-deps $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) $(TORCH_PIN)
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/pip install --quiet --no-build-isolation -c $(LOCK) "solu-repro[test]"
	rm -rf $(VENV)/tl4
	$(BIN)/pip install --quiet --no-deps --require-hashes --target $(VENV)/tl4 -r $(TL4_LOCK)
	touch $@

setup: $(BIN)/.installed

# Refresh the lock after editing pyproject.toml or requirements/*.in: pins that still satisfy
# them are kept; `make lock LOCK_ARGS=--upgrade` re-resolves everything to the newest. uv (pinned,
# in its own venv) resolves from PyPI for every platform at once (--universal), markers
# included, so the lock is the same whichever machine refreshes it.
UV_VERSION := 0.13.9
UV := $(VENV)/uv-$(UV_VERSION)/bin/uv
LOCK_ARGS ?=
$(UV):
	$(PYTHON) -m venv $(VENV)/uv-$(UV_VERSION)
	$(VENV)/uv-$(UV_VERSION)/bin/pip install --quiet uv==$(UV_VERSION)

lock: $(UV)
	$(UV) pip compile --quiet pyproject.toml requirements/setup.in --extra test --universal \
	  --python-version 3.11 --generate-hashes --custom-compile-command "make lock" \
	  $(LOCK_ARGS) -o $(LOCK)
	$(UV) pip compile --quiet requirements/setup.in -c $(LOCK) --no-deps --universal --python-version 3.11 \
	  --generate-hashes --custom-compile-command "make lock" -o $(SETUP_LOCK)
	$(UV) pip compile --quiet requirements/tl4.in --no-deps --universal --python-version 3.11 \
	  --generate-hashes --custom-compile-command "make lock" $(LOCK_ARGS) -o $(TL4_LOCK)

test: setup browser
	$(BIN)/pytest --timeout 900

# The book test opens built pages in headless Chromium; the JupyterLab test drives it with
# Selenium through ChromeDriver. Debian's chromium and chromium-driver (the same version);
# root or sudo. $SOLU_CHROMIUM / $SOLU_CHROMEDRIVER name other binaries (then the tests use
# those, and nothing is installed for them).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DEBIAN_CHROMIUM := /usr/bin/chromium
DEBIAN_CHROMEDRIVER := /usr/bin/chromedriver
browser:
	@want=""; \
	if [ -n "$$SOLU_CHROMIUM" ]; then [ -x "$$SOLU_CHROMIUM" ] || { \
	  echo "make browser: SOLU_CHROMIUM=$$SOLU_CHROMIUM is not an executable" >&2; exit 1; }; \
	elif [ ! -x $(DEBIAN_CHROMIUM) ]; then want=" chromium"; fi; \
	if [ -n "$$SOLU_CHROMEDRIVER" ]; then [ -x "$$SOLU_CHROMEDRIVER" ] || { \
	  echo "make browser: SOLU_CHROMEDRIVER=$$SOLU_CHROMEDRIVER is not an executable" >&2; exit 1; }; \
	elif [ ! -x $(DEBIAN_CHROMEDRIVER) ]; then want="$$want chromium-driver"; fi; \
	if [ -z "$$want" ]; then exit 0; fi; \
	if ! command -v apt-get >/dev/null; then \
	  echo "make browser: no$$want ($(DEBIAN_CHROMIUM), $(DEBIAN_CHROMEDRIVER)) and no apt-get;" \
	       "install Chromium and its ChromeDriver and set SOLU_CHROMIUM=/path/to/chromium" \
	       "SOLU_CHROMEDRIVER=/path/to/chromedriver" >&2; exit 1; fi; \
	echo "installing Debian's$$want (headless browser for the book and JupyterLab tests)"; \
	$(SUDO) apt-get update -qq && \
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$want >/dev/null

data: setup
	$(BIN)/solu-repro data --scale $(SCALE)

zoo: data
	$(BIN)/solu-repro zoo --scale $(SCALE)

# The main job: the zoo at $(SCALE), then every notebook executed at that scale (papermill;
# unchanged ones reused) and the HTML book built with warnings as errors. npm fetches the
# pages' widget manager and MathJax once (cached in ~/.cache/solu-repro).
book: zoo
	$(BIN)/solu-repro book --scale $(SCALE)

benchmark: setup
	$(BIN)/python benchmarks/train_throughput.py

clean-runs:
	rm -rf runs/$(SCALE)

clean-book:
	rm -rf _build book/executed book/vendor
