#!/usr/bin/env bash
# LibriSpeech data directories: <out>/train_clean_100, dev_clean, dev_other, test_clean, test_other.
# The corpus is not downloaded here: give the folder that contains LibriSpeech/ (from openslr.org
# SLR12: train-clean-100, dev-clean, dev-other, test-clean, test-other, each unpacked in place).
#
# Options:
#   --librispeech_root DIR   the folder that contains LibriSpeech/ (required)
#   --out DIR                where the data directories go (default data)
#   --subsets "..."          (default: train-clean-100 dev-clean dev-other test-clean test-other);
#                            commas may separate them too, as asr.sh's --local_data_opts splits on spaces
#   --skip_bad true|false    leave out (and count) unreadable or inconsistent utterances
set -euo pipefail

librispeech_root=
out=data
subsets="train-clean-100 dev-clean dev-other test-clean test-other"
skip_bad=false

. ./path.sh
. utils/parse_options.sh

if [ -z "${librispeech_root}" ] || [ ! -d "${librispeech_root}/LibriSpeech" ]; then
    echo "$0: --librispeech_root must be the folder that contains LibriSpeech/ (got '${librispeech_root}')" >&2
    exit 2
fi
opts=
[ "${skip_bad}" = true ] && opts=--skip-bad
# shellcheck disable=SC2086
${python} -m espnet_prune.bin.prep_librispeech --root "${librispeech_root}" --out "${out}" --subsets ${subsets//,/ } ${opts}
