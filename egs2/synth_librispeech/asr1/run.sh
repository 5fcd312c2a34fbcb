#!/usr/bin/env bash
# HJ-Pruning on a synthetic LibriSpeech, end to end on a CPU (see RESULTS.md): synthesise the corpus,
# fine-tune a stand-in upstream (there are no pretrained weights here) unpruned and pruned to half
# its MACs (HJ-Pruning-MAC) with a character LM, shrink, decode (joint CTC/attention with the LM), score.
#
#   ./run.sh                 everything from scratch, then RESULTS.md: stage 3 pretrains the
#                            self-supervised stand-in on unlabelled audio (local/pretrain_hubert.sh,
#                            hours), stage 5 trains the LM
#   ./run.sh --demo true     the same with the shipped stand-in (pretrained/hubert_ssl_4000steps.safetensors;
#                            `./run.sh --stage 1 --stop_stage 3` re-makes it as exp/pretrain/upstream.pt)
#                            and LM (pretrained/lm_char): `make demo`
#   ./run.sh --standin ctc   the earlier stand-in instead: a wav2vec2 trained with CTC on these
#                            transcripts (stage 3; with --demo, the shipped pretrained/ctc_standin),
#                            400 fine-tuning steps (conf/train_asr_{unpruned,mac0.5}.yaml), CTC + LM
#                            decoding (conf/decode_asr_ctc.yaml), RESULTS_ctc.md
#   ./run.sh --ci true       a reduced run of every stage (a few minutes; CI runs it): the CTC stand-in
#                            (--standin ssl: the HuBERT one) pretrained for 20 steps
#   ./run.sh --stage 6 --stop_stage 10  any asr.sh option (see ./asr.sh --help)
set -euo pipefail

. utils/synth_modes.sh "$@"
if [ -z "${standin}" ]; then
    if [ "${ci}" = true ]; then standin=ctc; else standin=ssl; fi
fi
lm_config=conf/train_lm.yaml
if [ "${standin}" = ssl ]; then
    # self-supervised on unlabelled audio, so it fine-tunes 6 x longer (the configs say why)
    pretrain="--pretrain_script local/pretrain_hubert.sh"
    shipped=pretrained/hubert_ssl_4000steps.safetensors
    asr_configs="conf/train_asr_unpruned_ssl.yaml conf/train_asr_mac0.5_ssl.yaml"
    decode_config=conf/decode_asr.yaml
    suffix=
else
    pretrain="--pretrain_config conf/pretrain.yaml"
    shipped=pretrained/ctc_standin.safetensors
    asr_configs="conf/train_asr_unpruned.yaml conf/train_asr_mac0.5.yaml"
    # 400 fine-tuning steps leave the attention decoder too weak to join the search (the config says)
    decode_config=conf/decode_asr_ctc.yaml
    suffix=_ctc
fi

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
    inference_config=${decode_config}
    results=RESULTS${suffix}.md
    dirs=
    if [ "${demo}" = true ]; then
        # the stand-in and the character LM ship (see pretrained/README.md): stages 3 and 5 have nothing to do
        pretrain=
        lm_config=
        dirs="--expdir exp_demo${suffix} --ssl_ckpt ${shipped} --lm_exp pretrained/lm_char"
        results=RESULTS${suffix}_demo.md
    fi
fi

# shellcheck disable=SC2086
./asr.sh ${dirs} \
    --train_set train_clean_100 \
    --valid_set dev_clean \
    --test_sets test_clean \
    --local_data_opts "--size ${size}" \
    --token_type char \
    ${pretrain} \
    --pretrain_args "${pretrain_args}" \
    --lm_config "${lm_config}" \
    --lm_args "${lm_args}" \
    --asr_configs "${asr_configs}" \
    --train_args "${train_args}" \
    --inference_config "${inference_config}" \
    --results "${results}" \
    "${args[@]}"
