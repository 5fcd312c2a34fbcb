# The two commands README.md opens with; each installs tools/venv first when needed.
PY := tools/venv/bin/python

.PHONY: install demo selfcheck test bench upgrade-lock

install:
	bash tools/install.sh

demo: install
	bash tools/demo.sh

selfcheck: install
	bash tools/selfcheck.sh

# two workers (the machine has 2 cores), each test file on one of them: a file's module fixtures
# (a whole recipe run) are made once; one thread per process; the 15 slowest are listed (budget ~15 min)
test: install
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -n 2 --dist loadfile --durations=15 tests

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
