#!/usr/bin/env bash
# HJ-Pruning of wav2vec2-base / HuBERT-base / WavLM Base+ while fine-tuning for SLU on SLURP (Peng et al., 2023):
# intent head + slurp_entity decoding, scored with SLURP's metrics (intent accuracy, SLU-F1).
#
#   ./run.sh --slurp_root /data/slurp --ssl_ckpt models/wav2vec2-base [--ngpu 1]
#   ./run.sh ... --pruning_sweep "trf_only:0.3 size:0.3 mac:0.3 mac:0.5"
#
# --slurp_root: the folder with dataset/slurp/{train,devel,test,train_synthetic}.jsonl and
# audio/slurp_real, audio/slurp_synth. --ssl_ckpt: wav2vec2-base, HuBERT-base or WavLM Base+ in any format
# espnet_prune reads: a Hugging Face directory, e.g. from
#   huggingface-cli download facebook/wav2vec2-base --include "*.json" "*.bin" "*.safetensors" --local-dir models/wav2vec2-base
#   huggingface-cli download facebook/hubert-base-ls960 --include "*.json" "*.bin" "*.safetensors" --local-dir models/hubert-base-ls960
#   huggingface-cli download microsoft/wavlm-base-plus --include "*.json" "*.bin" "*.safetensors" --local-dir models/wavlm-base-plus
# a fairseq checkpoint (wav2vec_small.pt, hubert_base_ls960.pt), unilm's WavLM-Base+.pt, S3PRL's converted .pt or an
# espnet_prune .safetensors. Every other option goes to asr.sh (see ./asr.sh --help).
set -euo pipefail

slurp_root=
ssl_ckpt=
args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --slurp_root) slurp_root=$2; shift 2 ;;
        --ssl_ckpt) ssl_ckpt=$2; shift 2 ;;
        *) args+=("$1"); shift ;;
    esac
done

./asr.sh \
    --task slu \
    --train_set train \
    --valid_set devel \
    --test_sets "test devel" \
    --local_data_opts "--slurp_root ${slurp_root}" \
    --token_type word \
    --ssl_ckpt "${ssl_ckpt}" \
    --asr_configs "conf/train_slu_unpruned.yaml conf/train_slu_pruned.yaml" \
    --pruning_sweep "trf_only:0.2 trf_only:0.4 sep_size:0.2 sep_size:0.4 size:0.2 size:0.4 mac:0.2 mac:0.4" \
    --inference_config conf/decode_slu.yaml \
    "${args[@]}"
