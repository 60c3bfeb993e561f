# The two commands of README.md: `make run` and `make test`.
# Each builds .venv inside the checkout from the pinned requirements first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench soak clean iptables

$(STAMP): setup.py requirements.txt requirements-test.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt -r requirements-test.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps \
		--config-settings editable_mode=compat -e .
	$(BIN)/python -c "from twisted.plugin import IPlugin, getPlugins; list(getPlugins(IPlugin))"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/twistd -n mitm $(ARGS)

test: $(STAMP) iptables
	$(BIN)/python tools/run_tests.py $(ARGS)

# Transparent mode is tested with an iptables REDIRECT in a network namespace of its own;
# where iptables cannot be installed (not root, no apt) that test skips and says so.
iptables:
	@command -v iptables >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
		{ apt-get install -y -qq iptables >/dev/null 2>&1 || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq iptables >/dev/null 2>&1; }; }; } || \
		echo "note: iptables is not available: transparent mode will not be tested"

bench: $(STAMP)
	$(BIN)/python -m benchmarks $(ARGS)

soak: $(STAMP)
	$(BIN)/python -m benchmarks.soak $(ARGS)

clean:
	rm -rf $(VENV) _trial_temp build *.egg-info twisted/plugins/dropin.cache
