# The two commands of README.md: `make run` and `make test`.
# Each builds .venv inside the checkout from the pinned requirements first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench soak clean

$(STAMP): setup.py requirements.txt requirements-test.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt -r requirements-test.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps \
		--config-settings editable_mode=compat -e .
	$(BIN)/python -c "from twisted.plugin import IPlugin, getPlugins; list(getPlugins(IPlugin))"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/twistd -n mitm $(ARGS)

test: $(STAMP)
	$(BIN)/python tools/run_tests.py $(ARGS)

bench: $(STAMP)
	$(BIN)/python -m benchmarks $(ARGS)

soak: $(STAMP)
	$(BIN)/python -m benchmarks.soak $(ARGS)

clean:
	rm -rf $(VENV) _trial_temp build *.egg-info twisted/plugins/dropin.cache
