# One command to run, one to test; both create .venv and install the project into it.
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 7860

.PHONY: setup translation run test eval clean

setup: $(VENV)/.installed translation

# Apertium (Debian packages) for English <-> French questions; where it cannot be installed, one line
# says translation is off and everything else works.
translation:
	@scripts/install-translation.sh

$(VENV)/.installed: pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt torch==2.13.0
	$(PY) -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $@

run: setup
	$(BIN)/csto-qa build
	$(BIN)/csto-qa serve --host $(HOST) --port $(PORT)

test: setup
	$(BIN)/pytest -q

eval: setup
	$(BIN)/csto-qa eval --json eval.json

clean:
	rm -rf $(VENV) index/CURRENT index/gen-* index/cache
