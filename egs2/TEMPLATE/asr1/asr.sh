#!/usr/bin/env bash
# ASR with a structurally pruned SSL upstream (HJ-Pruning), in ESPnet's asr.sh stage layout.
# Recipes link this file and call it from run.sh with their options.
#
# Stages (--stage N --stop_stage M; each one re-runnable, outputs moved into place when complete):
#   1 data        local/data.sh --out ${datadir} ${local_data_opts} -> ${datadir}/${train_set} ...
#   2 tokens      character list (stand-in pretraining) and sentencepiece model + token list
#   3 pretrain    only with --pretrain_config: train a stand-in upstream from scratch with CTC
#                 and export it as an S3PRL checkpoint (there are no pretrained weights here)
#   4 stats       ESPnet's --collect_stats: speech and text shape files
#   5 train       fine-tune (+ prune, if the config has a pruning_conf) with ESPnet's trainer
#   6 shrink      physically shrink the upstream of pruned models
#   7 decode      joint CTC/attention beam search on ${test_sets}; measures the real-time factor
#   8 score       sclite result.txt per test set (sclite, or the same report without it)
#   9 results     RESULTS.md: WER, upstream parameters and GMACs (10 s input), RTF; figures in
#                 RESULTS_plots/: WER against GMACs, what remains of each layer of pruned models
#
# Options:
#   --stage, --stop_stage N    first and last stage (default 1, 100)
#   --datadir data, --expdir exp   where the data directories and the models go
#   --ngpu N                   GPUs for training (ESPnet: > 1 runs distributed data parallel)
#   --nj N                     decoding processes (default: the number of cores)
#   --train_set, --valid_set, --test_sets "a b"   data directory names under ${datadir}
#   --local_data_opts "..."    options for local/data.sh
#   --token_type bpe|char      the units the models are trained on (default bpe)
#   --nbpe N, --bpemode unigram|bpe   sentencepiece vocabulary
#   --ssl_ckpt PATH            the upstream: a converted S3PRL wav2vec2/HuBERT checkpoint or a
#                              raw fairseq one (wav2vec_small.pt, hubert_base_ls960.pt)
#   --pretrain_config CONF     stage 3's config (its result becomes --ssl_ckpt)
#   --pretrain_upstream "..."  make_upstream options of the stand-in's initial model
#   --pretrain_args "..."      extra asr_train options for stage 3
#   --asr_configs "a.yaml b.yaml"   one model per config: ${expdir}/asr_<config name>
#   --pruning_sweep "mac:0.3 size:0.5"   train each pruning config once per method:target
#                              (${expdir}/asr_<config name>_<method><target>); unpruned configs once
#   --train_args "..."         extra asr_train options for stage 5 (e.g. --max_epoch 1)
#   --inference_config CONF    Speech2Text options (beam_size, ctc_weight, ...)
#   --inference_model NAME     which checkpoint to decode (default valid.acc.ave.pth)
#   --results RESULTS.md       the results file stage 9 writes

set -euo pipefail

log() {
    local fname=${BASH_SOURCE[1]##*/}
    echo -e "$(date '+%Y-%m-%dT%H:%M:%S') (${fname}:${BASH_LINENO[0]}:${FUNCNAME[1]}) $*"
}

stage=1
stop_stage=100
datadir=data
expdir=exp
ngpu=0
nj=$(nproc)
train_set=train
valid_set=dev
test_sets=test
local_data_opts=
token_type=bpe
nbpe=150
bpemode=unigram
ssl_ckpt=
pretrain_config=
pretrain_upstream="--arch wav2vec2 --preset small"
pretrain_args=
asr_configs=
pruning_sweep=
train_args=
inference_config=conf/decode_asr.yaml
inference_model=valid.acc.ave.pth
results=RESULTS.md

. ./path.sh
. utils/parse_options.sh

python=${python:-python3}
token_dir=${datadir}/token_list
bpe_dir=${token_dir}/bpe_${bpemode}${nbpe}
char_dir=${token_dir}/char
if [ "${token_type}" = bpe ]; then
    token_tag=bpe_${bpemode}${nbpe}
    token_args="--token_type bpe --bpemodel ${bpe_dir}/bpe.model --token_list ${bpe_dir}/tokens.txt"
elif [ "${token_type}" = char ]; then
    token_tag=char
    token_args="--token_type char --token_list ${char_dir}/tokens.txt"
else
    log "Error: --token_type must be bpe or char, not '${token_type}'"
    exit 2
fi
stats_dir=${expdir}/asr_stats_${token_tag}
pretrain_dir=${expdir}/pretrain
if [ -n "${pretrain_config}" ] && [ -z "${ssl_ckpt}" ]; then
    ssl_ckpt=${pretrain_dir}/upstream.pt
fi
[ -n "${asr_configs}" ] || { log "Error: --asr_configs is empty"; exit 2; }
for conf in ${asr_configs} ${pretrain_config} ${inference_config}; do
    [ -f "${conf}" ] || { log "Error: ${conf} does not exist"; exit 2; }
done

# whether a YAML config prunes (frontend_conf.pruning_conf set)
is_pruned() {
    ${python} -c 'import sys, yaml; c = yaml.safe_load(open(sys.argv[1])); sys.exit(0 if (c.get("frontend_conf") or {}).get("pruning_conf") else 1)' "$1"
}

# the models: "<model dir>|<config>|<asr_train options of its sweep point>"
models=()
for config in ${asr_configs}; do
    name=${expdir}/asr_$(basename "${config}" .yaml)
    if [ -n "${pruning_sweep}" ] && is_pruned "${config}"; then
        for point in ${pruning_sweep}; do
            method=${point%%:*}
            target=${point#*:}
            models+=("${name}_${method}${target}|${config}|--frontend_conf pruning_conf.method=${method} --frontend_conf pruning_conf.target=${target}")
        done
    else
        models+=("${name}|${config}|")
    fi
done

# the data arguments of asr_train for a token list, a training set and its stats (shape files)
data_args() {
    local train=$1 valid=$2 shapes=$3
    echo --train_data_path_and_name_and_type "${datadir}/${train}/wav.scp,speech,sound" \
        --train_data_path_and_name_and_type "${datadir}/${train}/text,text,text" \
        --valid_data_path_and_name_and_type "${datadir}/${valid}/wav.scp,speech,sound" \
        --valid_data_path_and_name_and_type "${datadir}/${valid}/text,text,text" \
        --train_shape_file "${shapes}/train/speech_shape" --train_shape_file "${shapes}/train/text_shape" \
        --valid_shape_file "${shapes}/valid/speech_shape" --valid_shape_file "${shapes}/valid/text_shape"
}

# collect_stats <token args...> into $1 (written beside it, then moved into place)
collect_stats() {
    local out=$1 config=$2
    shift 2
    if [ -f "${out}/train/speech_shape" ] && [ -f "${out}/valid/text_shape" ]; then
        log "${out} exists; skipped"
        return
    fi
    rm -rf "${out}.tmp"
    ${python} -m espnet_prune.bin.asr_train --collect_stats true --config "${config}" --ngpu 0 \
        --num_workers 1 --use_preprocessor true --batch_type unsorted --output_dir "${out}.tmp" \
        --frontend_conf upstream_ckpt="${ssl_init:-${ssl_ckpt}}" \
        --train_data_path_and_name_and_type "${datadir}/${train_set}/wav.scp,speech,sound" \
        --train_data_path_and_name_and_type "${datadir}/${train_set}/text,text,text" \
        --valid_data_path_and_name_and_type "${datadir}/${valid_set}/wav.scp,speech,sound" \
        --valid_data_path_and_name_and_type "${datadir}/${valid_set}/text,text,text" \
        --train_shape_file "${datadir}/${train_set}/wav.scp" --valid_shape_file "${datadir}/${valid_set}/wav.scp" \
        "$@" > "${out}.log" 2>&1 || { log "Error: see ${out}.log"; exit 1; }
    mv "${out}.tmp" "${out}"
}

# the config and weights to decode for a model directory: the shrunk model if there is one
model_files() {
    local dir=$1
    if [ -f "${dir}/shrunk/model.pth" ]; then
        echo "${dir}/shrunk/config.yaml ${dir}/shrunk/model.pth"
    else
        echo "${dir}/config.yaml ${dir}/${inference_model}"
    fi
}

run_stage() {
    local n=$1
    [ "${stage}" -le "${n}" ] && [ "${stop_stage}" -ge "${n}" ]
}

stage_done() {
    log "Stage $1 done in $(( SECONDS - stage_start )) s"
}

if run_stage 1; then
    stage_start=${SECONDS}
    log "Stage 1: data preparation: local/data.sh ${local_data_opts}"
    # shellcheck disable=SC2086
    local/data.sh --out "${datadir}" ${local_data_opts}
    for dset in ${train_set} ${valid_set} ${test_sets}; do
        [ -f "${datadir}/${dset}/wav.scp" ] || { log "Error: local/data.sh did not make ${datadir}/${dset}"; exit 1; }
    done
    stage_done 1
fi

if run_stage 2; then
    stage_start=${SECONDS}
    log "Stage 2: token lists: ${char_dir}$([ "${token_type}" = bpe ] && echo ", ${bpe_dir}")"
    if [ ! -f "${char_dir}/tokens.txt" ]; then
        rm -rf "${char_dir}.tmp" && mkdir -p "${char_dir}.tmp"
        ${python} -m espnet2.bin.tokenize_text --token_type char --input "${datadir}/${train_set}/text" \
            --output "${char_dir}.tmp/tokens.txt" --field 2- --write_vocabulary true \
            --add_symbol '<blank>:0' --add_symbol '<unk>:1' --add_symbol '<sos/eos>:-1'
        mv "${char_dir}.tmp" "${char_dir}"
    fi
    if [ "${token_type}" = bpe ] && [ ! -f "${bpe_dir}/tokens.txt" ]; then
        rm -rf "${bpe_dir}.tmp" && mkdir -p "${bpe_dir}.tmp"
        cut -f 2- -d ' ' "${datadir}/${train_set}/text" > "${bpe_dir}.tmp/train.txt"
        # sentencepiece's own trainer, with its command-line flags
        ${python} -c 'import sys, sentencepiece; sentencepiece.SentencePieceTrainer.train(" ".join(sys.argv[1:]))' \
            --input="${bpe_dir}.tmp/train.txt" --vocab_size="${nbpe}" --model_type="${bpemode}" --model_prefix="${bpe_dir}.tmp/bpe" --character_coverage=1.0 \
            --input_sentence_size=100000000
        ${python} -m espnet2.bin.tokenize_text --token_type bpe --bpemodel "${bpe_dir}.tmp/bpe.model" \
            --input "${datadir}/${train_set}/text" --output "${bpe_dir}.tmp/tokens.txt" --field 2- \
            --write_vocabulary true --add_symbol '<blank>:0' --add_symbol '<unk>:1' --add_symbol '<sos/eos>:-1'
        rm "${bpe_dir}.tmp/train.txt"
        mv "${bpe_dir}.tmp" "${bpe_dir}"
    fi
    stage_done 2
fi

if run_stage 3 && [ -n "${pretrain_config}" ]; then
    stage_start=${SECONDS}
    log "Stage 3: stand-in upstream: CTC training from scratch (${pretrain_config}) -> ${ssl_ckpt}"
    mkdir -p "${pretrain_dir}"
    ssl_init=${pretrain_dir}/init.pt
    if [ ! -f "${ssl_init}" ]; then
        # shellcheck disable=SC2086
        ${python} -m espnet_prune.bin.make_upstream ${pretrain_upstream} --out "${ssl_init}"
    fi
    collect_stats "${pretrain_dir}/stats" "${pretrain_config}" --token_type char --token_list "${char_dir}/tokens.txt"
    log "training: ${pretrain_dir}/train.log"
    # shellcheck disable=SC2046,SC2086
    ${python} -m espnet_prune.bin.asr_train --config "${pretrain_config}" --ngpu "${ngpu}" --resume true \
        --use_preprocessor true --token_type char --token_list "${char_dir}/tokens.txt" \
        --frontend_conf upstream_ckpt="${ssl_init}" --output_dir "${pretrain_dir}" \
        $(data_args "${train_set}" "${valid_set}" "${pretrain_dir}/stats") ${pretrain_args} \
        > "${pretrain_dir}/train.log" 2>&1 || { log "Error: see ${pretrain_dir}/train.log"; exit 1; }
    ${python} -m espnet_prune.bin.export_upstream --config "${pretrain_dir}/config.yaml" \
        --model_file "${pretrain_dir}/valid.loss.best.pth" --out "${ssl_ckpt}"
    unset ssl_init
    stage_done 3
fi

[ -n "${ssl_ckpt}" ] || { log "Error: give --ssl_ckpt (or --pretrain_config)"; exit 2; }
if run_stage 4 || run_stage 5; then
    [ -f "${ssl_ckpt}" ] || { log "Error: --ssl_ckpt ${ssl_ckpt} does not exist"; exit 1; }
fi

if run_stage 4; then
    stage_start=${SECONDS}
    log "Stage 4: statistics -> ${stats_dir}"
    first_config=${asr_configs%% *}
    # shellcheck disable=SC2086
    collect_stats "${stats_dir}" "${first_config}" ${token_args}
    stage_done 4
fi

if run_stage 5; then
    [ -f "${stats_dir}/train/speech_shape" ] || { log "Error: ${stats_dir} is missing (stage 4 makes it)"; exit 1; }
    for model in "${models[@]}"; do
        IFS='|' read -r dir config sweep_args <<< "${model}"
        stage_start=${SECONDS}
        log "Stage 5: training ${dir} (${config} ${sweep_args}); log: ${dir}/train.log"
        mkdir -p "${dir}"
        # shellcheck disable=SC2046,SC2086
        ${python} -m espnet_prune.bin.asr_train --config "${config}" --ngpu "${ngpu}" --resume true \
            --use_preprocessor true ${token_args} --frontend_conf upstream_ckpt="${ssl_ckpt}" \
            --output_dir "${dir}" $(data_args "${train_set}" "${valid_set}" "${stats_dir}") ${sweep_args} ${train_args} \
            > "${dir}/train.log" 2>&1 || { log "Error: see ${dir}/train.log"; exit 1; }
        stage_done 5
    done
fi

if run_stage 6; then
    stage_start=${SECONDS}
    for model in "${models[@]}"; do
        dir=${model%%|*}
        if is_pruned "${dir}/config.yaml"; then
            log "Stage 6: shrinking ${dir}/${inference_model} -> ${dir}/shrunk"
            ${python} -m espnet_prune.bin.asr_shrink --config "${dir}/config.yaml" \
                --model_file "${dir}/${inference_model}" --out_dir "${dir}/shrunk"
        else
            log "Stage 6: ${dir} is not pruned; nothing to shrink"
        fi
    done
    stage_done 6
fi

inference_tag=$(basename "${inference_config}" .yaml)
if run_stage 7; then
    stage_start=${SECONDS}
    for model in "${models[@]}"; do
        dir=${model%%|*}
        read -r model_config model_file <<< "$(model_files "${dir}")"
        for dset in ${test_sets}; do
            log "Stage 7: decoding ${datadir}/${dset} with ${model_file} -> ${dir}/${inference_tag}/${dset}"
            ${python} -m espnet_prune.bin.asr_decode --asr_train_config "${model_config}" \
                --asr_model_file "${model_file}" --decode_config "${inference_config}" \
                --data_dir "${datadir}/${dset}" --out_dir "${dir}/${inference_tag}/${dset}" --nj "${nj}"
        done
    done
    stage_done 7
fi

if run_stage 8; then
    stage_start=${SECONDS}
    for model in "${models[@]}"; do
        dir=${model%%|*}
        for dset in ${test_sets}; do
            log "Stage 8: scoring ${dir}/${inference_tag}/${dset}"
            ${python} -m espnet_prune.bin.score_asr --ref "${datadir}/${dset}/text" \
                --hyp "${dir}/${inference_tag}/${dset}/text" --utt2spk "${datadir}/${dset}/utt2spk" \
                --out "${dir}/${inference_tag}/${dset}/score_wer"
        done
    done
    stage_done 8
fi

if run_stage 9; then
    stage_start=${SECONDS}
    log "Stage 9: ${results}"
    dirs=
    for model in "${models[@]}"; do
        dirs="${dirs} ${model%%|*}"
    done
    # shellcheck disable=SC2086
    ${python} -m espnet_prune.bin.asr_results --exp_dirs ${dirs} --inference_tag "${inference_tag}" \
        --test_sets ${test_sets} --out "${results}" --plots_dir "${results%.md}_plots"
    stage_done 9
fi

log "Successfully finished"
