# Set-up is two commands: `make demo` and `make test`. Both find a Python >= 3.12 on this
# machine, create .venv if it is missing and install the package with its test extra.

VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# The first interpreter that actually runs (pyenv shims exist but may refuse) and is >= 3.12.
FIND_PYTHON := for c in python3.12 python3.13 python3.14 \
	$$(ls -d $$(pyenv root 2>/dev/null || echo $$HOME/.pyenv)/versions/3.1[2-9]*/bin/python3 2>/dev/null) \
	python3 python; do \
	  if command -v $$c >/dev/null 2>&1 && \
	     $$c -c 'import sys; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1; then \
	    $$c -c 'import sys; print(sys.executable)'; exit 0; fi; \
	done; echo "no Python >= 3.12 found (tried python3.12, python3.13, pyenv versions)" >&2; exit 1

.PHONY: demo test stress bench mutation venv clean

$(STAMP): pyproject.toml
	@test -x $(VPY) || $$($(FIND_PYTHON)) -m venv $(VENV)
	$(VPY) -m pip install --quiet --upgrade pip
	$(VPY) -m pip install --quiet -e ".[test]"
	@touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VPY) examples/quickstart.py
	$(VPY) examples/archive_end_to_end.py demo-output

test: $(STAMP)
	$(VPY) -m pytest -m "not slow" -q

stress: $(STAMP)
	$(VPY) -m pytest -m slow -q

# Mutation testing of the commit protocol's modules ([tool.mutmut] in pyproject.toml).
mutation: $(STAMP)
	$(VPY) -m pip install --quiet "mutmut>=3"
	HYPOTHESIS_PROFILE=mutation $(VPY) -m mutmut run; $(VPY) -m mutmut results

bench: $(STAMP)
	$(VPY) -m pip install --quiet -e ".[test,bench]"
	@for script in $$(grep -l '^def main' benchmarks/*.py); do \
	  echo "== $$script"; $(VPY) $$script || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info
