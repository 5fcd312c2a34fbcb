# The two commands README.md opens with; each installs tools/venv first when needed.
PY := tools/venv/bin/python

.PHONY: install demo selfcheck test bench upgrade-lock

install:
	bash tools/install.sh

demo: install
	bash tools/demo.sh

selfcheck: install
	bash tools/selfcheck.sh

test: install
	$(PY) -m pytest -q tests

bench: install
	$(PY) benchmarks/shrink_speed.py

# Regenerate tools/constraints.txt from the newest versions pip finds (torch/torchaudio/espnet stay
# pinned by install.sh): installs into a scratch venv, then `make test` before committing the file.
upgrade-lock:
	rm -rf tools/venv.lock
	ESPNET_PRUNE_VENV=tools/venv.lock ESPNET_PRUNE_UNLOCKED=1 bash tools/install.sh
	{ head -n 2 tools/constraints.txt; tools/venv.lock/bin/python -m pip freeze --exclude-editable | grep -v '^espnet_prune'; } > tools/constraints.txt.tmp
	mv tools/constraints.txt.tmp tools/constraints.txt
	rm -rf tools/venv.lock
