#!/usr/bin/env bash
# Synthesise a small LibriSpeech-layout corpus (espeak-ng voices reading a small grammar) and
# prepare its data directories: <out>/train_clean_100, <out>/dev_clean, <out>/test_clean.
#
# Options:
#   --out DIR                     where the data directories go (default data)
#   --size tiny|ci|small|medium   corpus size (default small: 3,000 training utterances)
#   --seed N                      (default 0)
#   --nj N                        synthesis processes (default: the number of cores)
set -euo pipefail

out=data
size=small
seed=0
nj=$(nproc)

. ./path.sh
. utils/parse_options.sh

# without train-clean-360 (the unlabelled audio only local/pretrain_hubert.sh uses): the same bytes
# for the other subsets, in a third of the time
corpus=downloads/synth_${size}_seed${seed}_labelled
# synth_corpus writes the corpus beside its final place and renames it; a finished one is kept
${python} -m espnet_prune.bin.synth_corpus --layout librispeech --no_pretraining_split --out "${corpus}" --seed "${seed}" \
    --size "${size}" --nj "${nj}"
# prep_librispeech replaces each data directory in one step
${python} -m espnet_prune.bin.prep_librispeech --root "${corpus}" --out "${out}" \
    --subsets train-clean-100 dev-clean test-clean
