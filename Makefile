# The whole set-up is two commands: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test lint bench system-packages vendor clips clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	$(BIN)/pip install --quiet --no-deps face-recognition==1.3.0
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

demo: $(VENV)/.installed
	$(BIN)/hall-sim demo

# Mosquitto, PostgreSQL, Chromium (with a font for Chinese) and ALSA's aplay are real parts of the
# test suite; espeak-ng makes the sound clips (tools/make_clips.py, build time only). Install them
# when missing. Playwright drives /usr/bin/chromium: no browser download.
system-packages:
	@missing=""; \
	command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || missing="$$missing mosquitto"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	[ -f /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] || missing="$$missing fonts-wqy-microhei"; \
	command -v aplay >/dev/null 2>&1 || missing="$$missing alsa-utils"; \
	command -v espeak-ng >/dev/null 2>&1 || missing="$$missing espeak-ng"; \
	if [ -n "$$missing" ]; then \
		echo "installing$$missing with apt-get"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .

test: system-packages $(VENV)/.installed-test lint
	$(BIN)/pytest -q -n 2 --durations=25

bench: system-packages $(VENV)/.installed-test
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/rules.py
	$(BIN)/python bench/face.py
	$(BIN)/python bench/junk.py
	$(BIN)/python bench/drain.py

# Make the edge's sound clips again (edge_agent/sound/clips/*.wav, committed) with espeak-ng's
# Mandarin voice; only after changing a prompt's text in edge_agent/sound/clips.py.
clips: system-packages $(VENV)/.installed
	$(BIN)/python tools/make_clips.py

# Re-fetch the vendored front-end files from the npm registry and check them against
# hub/web/static/vendor/MANIFEST.json (network; never part of test or demo). To upgrade, change
# PINS in tools/vendor_assets.py and run it with --write.
vendor:
	$(PYTHON) tools/vendor_assets.py

clean:
	rm -rf $(VENV) var .pytest_cache .hypothesis
