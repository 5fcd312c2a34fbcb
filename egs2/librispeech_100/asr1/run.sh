#!/usr/bin/env bash
# HJ-Pruning of wav2vec2-base / HuBERT-base while fine-tuning on LibriSpeech 100 h (Peng et al., 2023).
#
#   ./run.sh --librispeech_root /data --ssl_ckpt /models/wav2vec_small.pt [--ngpu 1]
#   ./run.sh ... --pruning_sweep "trf_only:0.3 sep_size:0.3 size:0.3 mac:0.3 mac:0.5"
#
# --ssl_ckpt: wav2vec_small.pt or hubert_base_ls960.pt as converted by S3PRL (the dict with
# task_cfg, model_cfg and model_weight; a raw fairseq checkpoint is refused with the command that
# converts it). The configs work for both; the architecture comes from the checkpoint.
# Every other option goes to asr.sh (see ./asr.sh --help).
set -euo pipefail

librispeech_root=
ssl_ckpt=
args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --librispeech_root) librispeech_root=$2; shift 2 ;;
        --ssl_ckpt) ssl_ckpt=$2; shift 2 ;;
        *) args+=("$1"); shift ;;
    esac
done

./asr.sh \
    --train_set train_clean_100 \
    --valid_set dev_clean \
    --test_sets "test_clean test_other dev_clean dev_other" \
    --local_data_opts "--librispeech_root ${librispeech_root}" \
    --nbpe 300 \
    --ssl_ckpt "${ssl_ckpt}" \
    --asr_configs "conf/train_asr_unpruned.yaml conf/train_asr_pruned.yaml" \
    --pruning_sweep "trf_only:0.2 trf_only:0.4 sep_size:0.2 sep_size:0.4 size:0.2 size:0.4 mac:0.2 mac:0.4" \
    --inference_config conf/decode_asr.yaml \
    "${args[@]}"
