#!/usr/bin/env bash
# `make selfcheck` (about a minute): HJ-Pruning-MAC on a tiny wav2vec2 learning a synthetic task
# (prints the per-layer table of what remains), then the checkpoint tools on a random pruning.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
py=${root}/tools/venv/bin/python
out=${1:-${root}/demo/selfcheck}
mkdir -p "${out}"
export PYTHONWARNINGS=ignore
"${py}" -m espnet_prune.bin.prune_selfcheck --method mac --target 0.5
"${py}" -m espnet_prune.bin.make_upstream --arch wav2vec2 --preset tiny --seed 0 --out "${out}/dense.pt"
"${py}" -m espnet_prune.bin.cost --ckpt "${out}/dense.pt"
"${py}" -m espnet_prune.bin.shrink --ckpt "${out}/dense.pt" --random-keep 0.5 --seed 0 --out "${out}/shrunk.safetensors"
"${py}" -m espnet_prune.bin.cost --ckpt "${out}/shrunk.safetensors"
