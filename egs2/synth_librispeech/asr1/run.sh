#!/usr/bin/env bash
# HJ-Pruning on a synthetic LibriSpeech, end to end on a CPU (20 minutes on 2 cores; see RESULTS.md):
# synthesise the corpus, train a stand-in upstream (there are no pretrained weights here) and a
# character LM, fine-tune the upstream unpruned and pruned to half its MACs (HJ-Pruning-MAC),
# shrink, decode (with the LM), score.
#
#   ./run.sh                 everything, then RESULTS.md
#   ./run.sh --demo true     the same with the shipped stand-in and LM (pretrained/: what stages 3
#                            and 5 of a full run made) instead of stages 3 and 5: `make demo`
#   ./run.sh --ci true       a reduced run of every stage (a few minutes; CI runs it)
#   ./run.sh --stage 6 --stop_stage 10  any asr.sh option (see ./asr.sh --help)
set -euo pipefail

ci=false
demo=false
args=()
while [ $# -gt 0 ]; do
    if [ "$1" = --ci ] || [ "$1" = --demo ]; then
        [ $# -ge 2 ] && { [ "$2" = true ] || [ "$2" = false ]; } || { echo "$0: $1 takes true or false" >&2; exit 2; }
        if [ "$1" = --ci ]; then ci=$2; else demo=$2; fi
        shift 2
    else
        args+=("$1")
        shift
    fi
done
[ "${ci}" = true ] && [ "${demo}" = true ] && { echo "$0: --ci and --demo are exclusive" >&2; exit 2; }
pretrain_config=conf/pretrain.yaml
lm_config=conf/train_lm.yaml

if [ "${ci}" = true ]; then
    # every stage on a small corpus with a few dozen steps: checks the plumbing, not the accuracy
    size=ci
    pretrain_args="--max_epoch 1 --num_iters_per_epoch 20"
    lm_args="--max_epoch 1 --num_iters_per_epoch 5"
    train_args="--max_epoch 1 --num_iters_per_epoch 10"
    inference_config=conf/decode_asr_ci.yaml
    results=RESULTS_ci.md
    dirs="--datadir data_ci --expdir exp_ci"
else
    size=small
    pretrain_args=
    lm_args=
    train_args=
    inference_config=conf/decode_asr.yaml
    results=RESULTS.md
    dirs=
    if [ "${demo}" = true ]; then
        # the stand-in and the character LM ship (see pretrained/README.md): stages 3 and 5 have nothing to do
        pretrain_config=
        lm_config=
        dirs="--expdir exp_demo --ssl_ckpt pretrained/ctc_standin.safetensors --lm_exp pretrained/lm_char"
        results=RESULTS_demo.md
    fi
fi

# shellcheck disable=SC2086
./asr.sh ${dirs} \
    --train_set train_clean_100 \
    --valid_set dev_clean \
    --test_sets test_clean \
    --local_data_opts "--size ${size}" \
    --token_type char \
    --pretrain_config "${pretrain_config}" \
    --pretrain_args "${pretrain_args}" \
    --lm_config "${lm_config}" \
    --lm_args "${lm_args}" \
    --asr_configs "conf/train_asr_unpruned.yaml conf/train_asr_mac0.5.yaml" \
    --train_args "${train_args}" \
    --inference_config "${inference_config}" \
    --results "${results}" \
    "${args[@]}"
