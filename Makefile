# The two commands README.md opens with; each installs tools/venv first when needed.
PY := tools/venv/bin/python

.PHONY: install demo test bench

install:
	bash tools/install.sh

demo: install
	bash tools/demo.sh

test: install
	$(PY) -m pytest -q tests

bench: install
	$(PY) benchmarks/shrink_speed.py
