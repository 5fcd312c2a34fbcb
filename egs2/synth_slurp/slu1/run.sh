#!/usr/bin/env bash
# HJ-Pruning for SLU on a synthetic SLURP, end to end on a CPU: synthesise the corpus (SLURP's
# layout and annotations), make a stand-in upstream (there are no pretrained weights here),
# fine-tune it with an intent head and slurp_entity decoding, unpruned and pruned to half its MACs
# (HJ-Pruning-MAC), shrink, decode, score with SLURP's metrics.
#
#   ./run.sh                 everything, then RESULTS.md: the self-supervised stand-in, the ASR
#                            recipe's HuBERT (stage 3 pretrains it on the synthetic LibriSpeech's
#                            unlabelled audio with local/pretrain_hubert.sh, hours), fine-tuned with
#                            conf/train_slu_{unpruned,mac0.5}_ssl.yaml
#   ./run.sh --demo true     the same from the shipped stand-in
#                            (../../synth_librispeech/asr1/pretrained/hubert_ssl_4000steps.safetensors),
#                            into exp_demo/ and RESULTS_demo.md
#   ./run.sh --standin ctc   the earlier stand-in instead: a wav2vec2 that stage 3 trains with CTC on
#                            this corpus's transcripts (conf/pretrain.yaml; supervised), fine-tuned
#                            with conf/train_slu_{unpruned,mac0.5}.yaml, into exp_ctc/ and RESULTS_ctc.md
#   ./run.sh --ci true       a reduced run of every stage with the CTC stand-in (a few minutes; CI
#                            runs it); --ci true --standin ssl: the HuBERT one, into exp_ci_ssl/
#   ./run.sh --stage 6 --stop_stage 10  any asr.sh option (see ./asr.sh --help)
set -euo pipefail

. utils/synth_modes.sh "$@"
# --ci keeps the quick CTC stand-in; the other stand-in's files carry its name
if [ "${ci}" = true ]; then default=ctc; else default=ssl; fi
standin=${standin:-${default}}
suffix=
[ "${standin}" = "${default}" ] || suffix=_${standin}
# the CTC stand-in learns this corpus's own transcripts, so no file of it can ship: --demo is the SSL one's
[ "${demo}" = true ] && [ "${standin}" = ctc ] && { echo "$0: --demo true needs --standin ssl (no CTC stand-in ships)" >&2; exit 2; }

if [ "${standin}" = ssl ]; then
    pretrain="--pretrain_script local/pretrain_hubert.sh"
    slu_configs="conf/train_slu_unpruned_ssl.yaml conf/train_slu_mac0.5_ssl.yaml"
else
    pretrain="--pretrain_config conf/pretrain.yaml"
    slu_configs="conf/train_slu_unpruned.yaml conf/train_slu_mac0.5.yaml"
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
    dirs="--expdir exp${suffix}"
    if [ "${demo}" = true ]; then
        pretrain=
        dirs="--expdir exp_demo --ssl_ckpt ../../synth_librispeech/asr1/pretrained/hubert_ssl_4000steps.safetensors"
        results=RESULTS_demo.md
    fi
fi

echo "$0: the ${standin} stand-in; ${dirs}; results in ${results}"
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
