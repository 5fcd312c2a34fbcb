"""Run one of ESPnet's command-line modules with espnet_prune's import hygiene (no NLTK download
attempt, no flash-attn notice: :mod:`espnet_prune.quiet_imports`).

    python -m espnet_prune.bin.espnet espnet2.bin.lm_train --config conf/train_lm.yaml ...
"""

from __future__ import annotations

import runpy
import sys

import espnet_prune  # noqa: F401  (installs the import hook)


def main() -> None:
    if len(sys.argv) < 2 or not sys.argv[1].startswith("espnet2.bin."):
        sys.exit("usage: python -m espnet_prune.bin.espnet espnet2.bin.<tool> [options]")
    module = sys.argv[1]
    sys.argv = [module, *sys.argv[2:]]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
