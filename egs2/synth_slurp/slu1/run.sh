#!/usr/bin/env bash
# HJ-Pruning for SLU on a synthetic SLURP, end to end on a CPU: synthesise the corpus (SLURP's
# layout and annotations), make a stand-in upstream (there are no pretrained weights here),
# fine-tune it with an intent head and slurp_entity decoding, unpruned and pruned to half its MACs
# (HJ-Pruning-MAC), shrink, decode, score with SLURP's metrics.
#
#   ./run.sh                 everything, then RESULTS.md: stage 3 trains the stand-in, a wav2vec2,
#                            with CTC on this corpus's transcripts (conf/pretrain.yaml; supervised)
#   ./run.sh --standin ssl   the self-supervised stand-in instead, the ASR recipe's HuBERT, fine-tuned
#                            longer (conf/train_slu_{unpruned,mac0.5}_ssl.yaml), RESULTS_ssl.md:
#                            stage 3 pretrains it on the synthetic LibriSpeech's unlabelled audio
#                            (local/pretrain_hubert.sh, hours); with --demo true the shipped one
#                            (../../synth_librispeech/asr1/pretrained/hubert_ssl_4000steps.safetensors),
#                            RESULTS_ssl_demo.md; `--demo true` alone means the same
#   ./run.sh --ci true       a reduced run of every stage (a few minutes; CI runs it)
#   ./run.sh --stage 6 --stop_stage 10  any asr.sh option (see ./asr.sh --help)
set -euo pipefail

. utils/synth_modes.sh "$@"
# the CTC stand-in learns this corpus's own transcripts, so no file of it can ship: --demo is the SSL one's
if [ -z "${standin}" ]; then
    if [ "${demo}" = true ]; then standin=ssl; else standin=ctc; fi
fi
[ "${demo}" = true ] && [ "${standin}" = ctc ] && { echo "$0: --demo true needs --standin ssl (no CTC stand-in ships)" >&2; exit 2; }

if [ "${standin}" = ssl ]; then
    pretrain="--pretrain_script local/pretrain_hubert.sh"
    slu_configs="conf/train_slu_unpruned_ssl.yaml conf/train_slu_mac0.5_ssl.yaml"
    suffix=_ssl
else
    pretrain="--pretrain_config conf/pretrain.yaml"
    slu_configs="conf/train_slu_unpruned.yaml conf/train_slu_mac0.5.yaml"
    suffix=
fi
if [ "${ci}" = true ]; then
    # every stage on a small corpus with a few dozen steps: checks the plumbing, not the accuracy
    size=ci
    pretrain_args="--max_epoch 1 --num_iters_per_epoch 20"
    train_args="--max_epoch 1 --num_iters_per_epoch 10"
    inference_config=conf/decode_slu_ci.yaml
    results=RESULTS_ci${suffix}.md
    dirs="--datadir data_ci --expdir exp_ci${suffix}"
else
    size=small
    pretrain_args=
    train_args=
    inference_config=conf/decode_slu.yaml
    results=RESULTS${suffix}.md
    dirs=
    [ "${standin}" = ssl ] && dirs="--expdir exp_ssl"
    if [ "${demo}" = true ]; then
        pretrain=
        dirs="--expdir exp_ssl_demo --ssl_ckpt ../../synth_librispeech/asr1/pretrained/hubert_ssl_4000steps.safetensors"
        results=RESULTS_ssl_demo.md
    fi
fi

# shellcheck disable=SC2086
./asr.sh ${dirs} \
    --task slu \
    --train_set train \
    --valid_set devel \
    --test_sets test \
    --local_data_opts "--size ${size}" \
    --token_type word \
    ${pretrain} \
    --pretrain_args "${pretrain_args}" \
    --asr_configs "${slu_configs}" \
    --train_args "${train_args}" \
    --inference_config "${inference_config}" \
    --results "${results}" \
    "${args[@]}"
