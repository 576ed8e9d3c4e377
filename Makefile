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

.PHONY: setup test book data zoo benchmark clean-runs clean-book browser

# torch is pinned and installed first: an unpinned torch pulled in as another package's
# dependency would be the newest build, with several GB of CUDA packages.
$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) torch==2.13.0
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

setup: $(BIN)/.installed

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
