# Two commands for a fresh Debian/Ubuntu machine with Python 3.11: `make demo` and `make test`.
# Both set up what is missing (system library, .venv, the package with its pinned dependencies) and skip
# what is already done.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup demo test
setup: $(STAMP)
	@tools/install_system_deps.sh

$(STAMP): setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[test]"
	touch $(STAMP)

demo: setup
	$(PY) tools/demo.py

test: setup
	$(PY) -m pytest
