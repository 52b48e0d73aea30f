# The two commands of the quick start: `make run` and `make test`.
PYTHON ?= python3
# PYTHON= given empty (an unset variable in a script, PYTHON=$PY) is the default: left empty, each
# recipe line would start with "-c", which make reads as "ignore this line's errors".
override PYTHON := $(or $(strip $(PYTHON)),python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: help run test lint typecheck pytest pytest-prepared pytest-quick servers bench docs screenshots clean

# `make` alone lists the targets: the first rule below would otherwise be the goal, and a bare
# `make` only made the virtualenv, saying '.venv/bin/python' is up to date.
.DEFAULT_GOAL := help

# The oldest Python the bridge runs on: pyproject.toml's requires-python (a test keeps them
# equal). pip refuses an older one saying only that it "requires a different Python", and the
# .venv made with it stays, so that every make after, with a newer Python installed, failed the
# same way: refused here, before a .venv is made, or naming the old .venv to remove.
MIN_PYTHON := 3.11
older_than_min = $(1) -c 'import sys; sys.exit(sys.version_info < tuple(map(int, "$(MIN_PYTHON)".split("."))))'
WHICH_MAKE := make $(or $(firstword $(MAKECMDGOALS)),run)
# The Python named as an example: the newest python3.X on the PATH that runs and is new enough,
# never the one that was just refused; a placeholder when there is none, not a Python that is
# not there. Expanded only where a refusal says it (a Python started for each candidate).
PYTHON_CANDIDATES := python3.14 python3.13 python3.12 python3.11
OTHER_PYTHON = $(firstword $(foreach candidate,$(filter-out $(notdir $(PYTHON)),$(PYTHON_CANDIDATES)),\
	$(shell $(call older_than_min,$(candidate)) 2>/dev/null && echo $(candidate))))
# The foreach expands OTHER_PYTHON once.
PYTHON_EXAMPLE = $(or $(foreach other,$(OTHER_PYTHON),e.g. $(WHICH_MAKE) PYTHON=$(other)),\
	as $(WHICH_MAKE) PYTHON=/path/to/python3 (no $(lastword $(PYTHON_CANDIDATES)) to\
	$(firstword $(PYTHON_CANDIDATES)) on the PATH runs and is new enough))
# Its version, or "missing" when it does not run: a pyenv shim of a version not installed is on
# the PATH, and says so in lines of its own on stderr, which were printed inside this sentence.
python_version = $$($(1) -c 'import sys; sys.stdout.write("Python " + sys.version.split()[0])' 2>/dev/null || echo missing)

# A Python that is missing is asked for installed, not newer: python3.13 named and not there.
$(BIN)/python:
	@$(call older_than_min,$(PYTHON)) 2>/dev/null || { found=$(call python_version,$(PYTHON)); \
		if [ "$$found" = missing ]; then which="one installed"; else which="a newer one"; fi; \
		echo "exesdb-bridge needs Python $(MIN_PYTHON) or newer, and $(PYTHON) is $$found: name" \
		"$$which, $(PYTHON_EXAMPLE)" >&2; exit 1; }
	@# Debian splits venv out of each Python, as python3.X-venv (python3-venv is the default
	@# python3's, no help to a python3.11 beside Ubuntu 22.04's 3.10); install it when missing and
	@# running as root.
	@$(PYTHON) -c 'import ensurepip' 2>/dev/null || { \
		venv=$$($(PYTHON) -c 'import sys; print("python%d.%d-venv" % sys.version_info[:2])'); \
		{ [ "$$(id -u)" = 0 ] && apt-get update -qq \
			&& DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$venv >/dev/null; } \
		|| echo "$(PYTHON) -m venv needs Debian's $$venv (sudo apt-get install $$venv)"; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# A .venv an older Python made (before MIN_PYTHON was checked, or copied in) is named, not
# handed to pip.
VENV_PYTHON_OK = @$(call older_than_min,$(BIN)/python) || { echo "$(VENV) was made with" \
	"$(call python_version,$(BIN)/python), older than the Python $(MIN_PYTHON) exesdb-bridge needs: remove" \
	"it (rm -rf $(VENV)) and make it again with a newer one, $(PYTHON_EXAMPLE)" >&2; exit 1; }

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(VENV_PYTHON_OK)
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: $(BIN)/python pyproject.toml
	$(VENV_PYTHON_OK)
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed

help:
	@echo 'make run           start the bridge: in-process bus, collectors on, /metrics on :9570'
	@echo '                   (EXESDB_HTTP_ADDR=127.0.0.1:9571 make run for another port)'
	@echo 'make test          ruff, mypy and the whole suite, with the real servers it uses'
	@echo 'make pytest-quick  the suite without the tests marked slow'
	@echo 'make bench         the benchmarks (ARGS="--only ingest" passes options on)'
	@echo 'make docs          docs/messages.md generated again from the models'
	@echo 'make screenshots   the pictures of the pages in docs/img'
	@echo 'make clean         remove .venv, the caches, the egg-info and the state in .exesdb-bridge(-2, -demo)'
	@echo 'Every setting is an environment variable: docs/configuration.md.'

run: $(VENV)/.installed
	$(BIN)/exesdb-bridge run

# Real servers the integration tests start: installed when missing and running as root.
# podman (with runc) runs the image the tests build on a Debian stand-in made by debootstrap;
# headless chromium (driven through chromium-driver) opens the pages; systemd-analyze checks the
# systemd unit; btrfs-progs makes the small btrfs the alert outbox fills up; the ingest bench's
# smoke test runs Pushgateway beside the bridge; node runs the docs' Node.js recipes.
servers:
	@missing=""; \
	command -v prometheus >/dev/null || missing="$$missing prometheus"; \
	command -v prometheus-alertmanager >/dev/null || missing="$$missing prometheus-alertmanager"; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v kubectl >/dev/null || missing="$$missing kubernetes-client"; \
	command -v podman >/dev/null || missing="$$missing podman"; \
	command -v runc >/dev/null || missing="$$missing runc"; \
	command -v debootstrap >/dev/null || missing="$$missing debootstrap"; \
	command -v systemd-analyze >/dev/null || missing="$$missing systemd"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v chromedriver >/dev/null || missing="$$missing chromium-driver"; \
	command -v curl >/dev/null || missing="$$missing curl"; \
	command -v mkfs.btrfs >/dev/null || missing="$$missing btrfs-progs"; \
	command -v prometheus-pushgateway >/dev/null || missing="$$missing prometheus-pushgateway"; \
	command -v node >/dev/null || missing="$$missing nodejs"; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			echo "installing:$$missing"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
				-o DPkg::Lock::Timeout=300 --no-install-recommends $$missing >/dev/null; \
		else \
			echo "the integration tests need:$$missing (sudo apt-get install$$missing)"; \
		fi; \
	fi

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.installed-test
	$(BIN)/mypy

# Four pytest-xdist workers on two cores (PYTEST_WORKERS=0 runs in one process): much of the
# suite waits on real servers and bridge processes. Measured on a quiet 2-core host, two workers
# kept the cores busy 67% of the time (614 s), three 82% (518 s); on 6 Dec 2026, on a host then
# at half speed, three 77% (587 s), four 87% (526 s). Each module whose servers are started once
# (xdist_group) stays on one worker, and so does each integration module, spread through the
# other tests in the order collected (tests/scheduling.py says why): 458 s where file order took
# 538 s, side by side (docs/performance.md).
PYTEST_WORKERS ?= 4
PYTEST_XDIST := -n $(PYTEST_WORKERS) --dist loadgroup --no-loadscope-reorder

PYTEST := $(BIN)/pytest $(PYTEST_XDIST)

# What the suite needs before it starts: the real servers, the package's byte code and the test
# modules as pytest rewrites them (for its assertion messages), written once. With
# PYTHONDONTWRITEBYTECODE set, as on some CI hosts, each of the hundreds of bridge processes would
# compile every module again, and each worker rewrite every test module (some 10 s of CPU each).
# A collection error is left for the run itself to report.
pytest-prepared: $(VENV)/.installed-test servers
	$(BIN)/python -m compileall -q bridge collectors
	PYTHONDONTWRITEBYTECODE= $(BIN)/pytest --collect-only -q >/dev/null || true

pytest: pytest-prepared
	$(PYTEST)

# On two cores: ruff, mypy and the suite's preparation two at a time, then the suite.
test: $(VENV)/.installed-test
	@$(MAKE) --no-print-directory -j2 lint typecheck pytest-prepared
	$(PYTEST)

# A quicker loop while working: the suite without the tests marked slow (crash, shutdown and
# replica runs of whole bridge processes). `make test` runs them all.
pytest-quick: pytest-prepared
	$(PYTEST) -m "not slow"

# ARGS passes options on: make bench ARGS="--only faults --faults-seconds 1800".
bench: $(VENV)/.installed-test
	$(BIN)/python -m bench $(ARGS)

# Pages generated from the code (a test fails when they are stale).
docs: $(VENV)/.installed
	$(BIN)/python -m bridge.schema docs/messages.md

# Pictures of the status page and an alert's page (the --demo bridge, headless chromium; the
# alert a SystemAlert posted to it with a source and metadata).
screenshots: $(VENV)/.installed-test servers
	$(BIN)/python -m tests.pages.screenshots docs/img

# The state folders of `make run`, of the README's second bridge (EXESDB_STATE_DIR=.exesdb-bridge-2)
# and of --demo; and the metadata the editable install writes beside the code.
clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache exesdb_bridge.egg-info \
		.exesdb-bridge .exesdb-bridge-2 .exesdb-bridge-demo
