#!/usr/bin/env bash
# Demo of the pruning plugin on a tiny random wav2vec2: dense cost, random structured pruning
# (half of every conv layer's channels, heads and FFN units), shrunk cost.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
py=${root}/tools/venv/bin/python
out=${1:-${root}/demo}
mkdir -p "${out}"
export PYTHONWARNINGS=ignore
"${py}" -m espnet_prune.bin.make_upstream --arch wav2vec2 --preset tiny --seed 0 --out "${out}/dense.pt"
"${py}" -m espnet_prune.bin.cost --ckpt "${out}/dense.pt"
"${py}" -m espnet_prune.bin.shrink --ckpt "${out}/dense.pt" --random-keep 0.5 --seed 0 --out "${out}/shrunk.safetensors"
"${py}" -m espnet_prune.bin.cost --ckpt "${out}/shrunk.safetensors"
