#!/usr/bin/env bash
# HJ-Pruning of wav2vec2-base / HuBERT-base / WavLM Base+ while fine-tuning on LibriSpeech 100 h (Peng et al., 2023).
#
#   ./run.sh --librispeech_root /data --ssl_ckpt models/wav2vec2-base [--ngpu 1]
#   ./run.sh ... --pruning_sweep "trf_only:0.3 sep_size:0.3 size:0.3 mac:0.3 mac:0.5"
#
# --ssl_ckpt: wav2vec2-base, HuBERT-base or WavLM Base+ in any format espnet_prune reads: a Hugging Face
# directory, e.g. from
#   huggingface-cli download facebook/wav2vec2-base --include "*.json" "*.bin" "*.safetensors" --local-dir models/wav2vec2-base
#   huggingface-cli download facebook/hubert-base-ls960 --include "*.json" "*.bin" "*.safetensors" --local-dir models/hubert-base-ls960
#   huggingface-cli download microsoft/wavlm-base-plus --include "*.json" "*.bin" "*.safetensors" --local-dir models/wavlm-base-plus
# a fairseq checkpoint (wav2vec_small.pt, hubert_base_ls960.pt), unilm's WavLM-Base+.pt, S3PRL's converted .pt or an
# espnet_prune .safetensors. The configs work for all; the architecture comes from the checkpoint.
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
