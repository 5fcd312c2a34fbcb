#!/usr/bin/env bash
# HJ-Pruning for SLU on a synthetic SLURP, end to end on a CPU: synthesise the corpus (SLURP's
# layout and annotations), train a stand-in upstream (there are no pretrained weights here),
# fine-tune it with an intent head and slurp_entity decoding, unpruned and pruned to half its MACs
# (HJ-Pruning-MAC), shrink, decode, score with SLURP's metrics.
#
#   ./run.sh                 everything, then RESULTS.md
#   ./run.sh --ci true       a reduced run of every stage (a few minutes; CI runs it)
#   ./run.sh --stage 6 --stop_stage 10  any asr.sh option (see ./asr.sh --help)
set -euo pipefail

ci=false
args=()
while [ $# -gt 0 ]; do
    if [ "$1" = --ci ]; then
        [ $# -ge 2 ] || { echo "$0: --ci needs true or false" >&2; exit 2; }
        ci=$2
        shift 2
    else
        args+=("$1")
        shift
    fi
done

if [ "${ci}" = true ]; then
    # every stage on a small corpus with a few dozen steps: checks the plumbing, not the accuracy
    size=ci
    pretrain_args="--max_epoch 1 --num_iters_per_epoch 20"
    train_args="--max_epoch 1 --num_iters_per_epoch 10"
    inference_config=conf/decode_slu_ci.yaml
    results=RESULTS_ci.md
    dirs="--datadir data_ci --expdir exp_ci"
elif [ "${ci}" = false ]; then
    size=small
    pretrain_args=
    train_args=
    inference_config=conf/decode_slu.yaml
    results=RESULTS.md
    dirs=
else
    echo "$0: --ci takes true or false, not '${ci}'" >&2
    exit 2
fi

# shellcheck disable=SC2086
./asr.sh ${dirs} \
    --task slu \
    --train_set train \
    --valid_set devel \
    --test_sets test \
    --local_data_opts "--size ${size}" \
    --token_type word \
    --pretrain_config conf/pretrain.yaml \
    --pretrain_args "${pretrain_args}" \
    --asr_configs "conf/train_slu_unpruned.yaml conf/train_slu_mac0.5.yaml" \
    --train_args "${train_args}" \
    --inference_config "${inference_config}" \
    --results "${results}" \
    "${args[@]}"
