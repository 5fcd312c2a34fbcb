#!/usr/bin/env bash
# Data directories from the real SLURP: <out>/train (slurp_real + slurp_synth audio), <out>/devel,
# <out>/test, each with the slurp_entity target (text), transcript, intent, entities, recording.
#
# Options:
#   --slurp_root DIR     the folder holding dataset/slurp/*.jsonl and audio/slurp_real, audio/slurp_synth
#   --out DIR            where the data directories go (default data)
#   --no_train_synthetic true   leave train_synthetic.jsonl out of train
#   --skip_bad true      leave out (and log) unreadable audio or malformed records instead of stopping
set -euo pipefail

slurp_root=
out=data
no_train_synthetic=false
skip_bad=false

. ./path.sh
. utils/parse_options.sh

if [ -z "${slurp_root}" ] || [ ! -d "${slurp_root}/dataset/slurp" ]; then
    echo "$0: --slurp_root must be the SLURP folder that contains dataset/slurp/ (got '${slurp_root}')" >&2
    exit 2
fi
opts=
[ "${no_train_synthetic}" = true ] && opts="${opts} --no_train_synthetic"
[ "${skip_bad}" = true ] && opts="${opts} --skip-bad"
# shellcheck disable=SC2086
${python} -m espnet_prune.bin.prep_slurp --slurp_root "${slurp_root}" --out "${out}" ${opts}
