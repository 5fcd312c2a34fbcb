#!/usr/bin/env bash
# Synthesise a small SLURP-layout corpus (espeak-ng voices reading commands of 18 intents, with
# entity annotations) and prepare its data directories: <out>/train, <out>/devel, <out>/test.
#
# Options:
#   --out DIR                     where the data directories go (default data)
#   --size tiny|ci|small|medium   corpus size (default small: 1,400 training records)
#   --seed N                      (default 0)
#   --nj N                        synthesis processes (default: the number of cores)
set -euo pipefail

out=data
size=small
seed=0
nj=$(nproc)

. ./path.sh
. utils/parse_options.sh

corpus=downloads/synth_slurp_${size}_seed${seed}
# synth_corpus writes the corpus beside its final place and renames it; a finished one is kept
${python} -m espnet_prune.bin.synth_corpus --layout slurp --out "${corpus}" --seed "${seed}" \
    --size "${size}" --nj "${nj}"
# prep_slurp replaces each data directory in one step
${python} -m espnet_prune.bin.prep_slurp --slurp_root "${corpus}" --out "${out}"
