#!/usr/bin/env bash
# ASR or SLU with a structurally pruned SSL upstream (HJ-Pruning), in ESPnet's asr.sh stage layout.
# Recipes link this file and call it from run.sh with their options.
#
# --task slu trains espnet_prune_slu models (slu_train: an intent head beside ESPnet's decoder,
# which outputs SLURP entities inline, as ESPnet's slurp_entity recipe does) on data directories
# made by prep_slurp (text = the tagged target, transcript, intent, entities, recording), and
# scores them with SLURP's metrics (score_slurp) instead of sclite.
#
# Stages (--stage N --stop_stage M; each one re-runnable, outputs moved into place when complete):
#   1 data        local/data.sh --out ${datadir} ${local_data_opts} -> ${datadir}/${train_set} ...
#   2 tokens      character list (stand-in pretraining), the token list (sentencepiece model,
#                 characters or words) and, for SLU, the intent list
#   3 pretrain    only with --pretrain_config: train a stand-in upstream from scratch with CTC
#                 and export it as an S3PRL checkpoint (there are no pretrained weights here);
#                 with --pretrain_script: the recipe's own (self-supervised) pretraining
#   4 stats       ESPnet's --collect_stats: speech and text shape files
#   5 lm          only with --lm_config: a language model of the training text (ESPnet's lm_train,
#                 the models' tokens), which stage 8 adds to the beam search (shallow fusion)
#   6 train       fine-tune (+ prune, if the config has a pruning_conf) with ESPnet's trainer
#   7 shrink      physically shrink the upstream of pruned models
#   8 decode      joint CTC/attention beam search on ${test_sets}; measures the real-time factor
#   9 score       sclite result.txt per test set (sclite, or the same report without it); SLU:
#                 SLURP's metrics (intent accuracy, SLU-F1, ...) and transcript WER
#  10 results     RESULTS.md: WER (SLU: intent accuracy, SLU-F1, WER), upstream parameters and
#                 GMACs (10 s input), RTF; figures in RESULTS_plots/: the first score against GMACs,
#                 what remains of each layer of pruned models
#
# Options:
#   --stage, --stop_stage N    first and last stage (default 1, 100)
#   --task asr|slu             (default asr)
#   --datadir data, --expdir exp   where the data directories and the models go
#   --ngpu N                   GPUs for training (per node; ESPnet: > 1 runs distributed data parallel)
#   --num_nodes N              nodes for training (> 1: ESPnet's multi-node mode, one launcher task per
#                              node spawning --ngpu workers, initialised through a file in the model's
#                              directory, which must be on a shared file system)
#   --dist_launcher slurm|mpi  how the nodes are started when --num_nodes > 1: srun (from inside an
#                              sbatch allocation) or Open MPI's mpirun, one task per node
#   --nj N                     decoding processes (default: the number of cores)
#   --train_jobs N             stage 6 trains N models at a time, each with nproc/N threads (CPU
#                              sweeps; default 1: one after the other)
#   --train_set, --valid_set, --test_sets "a b"   data directory names under ${datadir}
#   --local_data_opts "..."    options for local/data.sh
#   --token_type bpe|char|word the units the models are trained on (default bpe)
#   --nbpe N, --bpemode unigram|bpe   sentencepiece vocabulary
#   --ssl_ckpt PATH            the upstream, wav2vec2/HuBERT/WavLM in any format: a Hugging Face directory
#                              (facebook/wav2vec2-base, microsoft/wavlm-base-plus), a fairseq .pt
#                              (wav2vec_small.pt), unilm's WavLM-Base+.pt, S3PRL's converted .pt, an
#                              espnet_prune .safetensors
#   --pretrain_config CONF     stage 3's config (its result becomes --ssl_ckpt)
#   --pretrain_upstream "..."  make_upstream options of the stand-in's initial model
#   --pretrain_args "..."      extra trainer options for stage 3 (asr_train; with --pretrain_script,
#                              its --train_args)
#   --pretrain_script SCRIPT   stage 3 runs SCRIPT --dir ${expdir}/pretrain --train_args "${pretrain_args}"
#                              ${local_data_opts} instead, which must leave ${expdir}/pretrain/upstream.pt,
#                              the upstream (e.g. local/pretrain_hubert.sh: HuBERT on unlabelled audio);
#                              ignored when --ssl_ckpt is given
#   --asr_configs "a.yaml b.yaml"   one model per config: ${expdir}/<task>_<config name>
#   --pruning_sweep "mac:0.3 size:0.5"   train each pruning config once per method:target
#                              (${expdir}/<task>_<config name>_<method><target>); unpruned configs once;
#                              "mac:0.5+distill" adds layer-wise distillation from the unpruned
#                              upstream (frontend_conf.distill_conf, weight 1; ..._mac0.5_distill),
#                              "mac:0.5+distill0.1" the same with weight 0.1 (..._mac0.5_distill0.1);
#                              "+distill20" trains every config, pruned or not, as it is with a teacher
#                              (..._distill20): an unpruned one so is the control of a pruned one's teacher
#   --distill_teacher CKPT     the teacher of the sweep's +distill points instead of the upstream they
#                              start from (any --ssl_ckpt format), e.g. the unpruned model fine-tuned
#                              and exported (espnet_prune.bin.export_upstream); their names gain
#                              -<the file's stem> (..._mac0.5_distill-unpruned-ft), so each teacher is a model
#   --seeds "0 1 2"            train every model once per seed (${expdir}/<model>_seed<N>, asr_train
#                              --seed N); stage 10 reports mean ± sd over the seeds and the MAPSSWE
#                              p-value of each model's WER against the unpruned model's (default: one
#                              run, ESPnet's seed 0, no suffix)
#   --lm_config CONF           stage 5's config (ESPnet's lm_train); its weight is lm_weight in
#                              --inference_config
#   --lm_args "..."            extra lm_train options for stage 5
#   --lm_exp DIR               a trained LM (DIR/config.yaml, DIR/valid.loss.ave.pth) instead of stage 5
#   --train_args "..."         extra asr_train options for stage 6 (e.g. --max_epoch 1)
#   --inference_config CONF    Speech2Text options (beam_size, ctc_weight, ...)
#   --inference_model NAME     which checkpoint to decode (default valid.acc.ave.pth)
#   --results RESULTS.md       the results file stage 10 writes

set -euo pipefail

log() {
    local fname=${BASH_SOURCE[1]##*/}
    echo -e "$(date '+%Y-%m-%dT%H:%M:%S') (${fname}:${BASH_LINENO[0]}:${FUNCNAME[1]}) $*"
}

stage=1
stop_stage=100
task=asr
datadir=data
expdir=exp
ngpu=0
num_nodes=1
dist_launcher=
nj=$(nproc)
train_jobs=1
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
pretrain_script=
asr_configs=
pruning_sweep=
distill_teacher=
seeds=
lm_config=
lm_args=
lm_exp=
train_args=
inference_config=conf/decode_asr.yaml
inference_model=valid.acc.ave.pth
results=RESULTS.md

. ./path.sh
. utils/parse_options.sh

python=${python:-python3}
if [ "${task}" = asr ]; then
    # the training target, and the plain transcript that the stand-in pretraining learns
    target_name=text
    transcript_name=text
elif [ "${task}" = slu ]; then
    target_name=text
    transcript_name=transcript
else
    log "Error: --task must be asr or slu, not '${task}'"
    exit 2
fi
train_module=espnet_prune.bin.${task}_train
shrink_module=espnet_prune.bin.${task}_shrink
token_dir=${datadir}/token_list
bpe_dir=${token_dir}/bpe_${bpemode}${nbpe}
char_dir=${token_dir}/char
word_dir=${token_dir}/word
intent_list=${token_dir}/intents.txt
if [ "${token_type}" = bpe ]; then
    token_tag=bpe_${bpemode}${nbpe}
    token_args="--token_type bpe --bpemodel ${bpe_dir}/bpe.model --token_list ${bpe_dir}/tokens.txt"
elif [ "${token_type}" = char ] || [ "${token_type}" = word ]; then
    token_tag=${token_type}
    token_args="--token_type ${token_type} --token_list ${token_dir}/${token_type}/tokens.txt"
else
    log "Error: --token_type must be bpe, char or word, not '${token_type}'"
    exit 2
fi
task_args=
if [ "${task}" = slu ]; then
    task_args="--intent_list ${intent_list}"
fi
stats_dir=${expdir}/${task}_stats_${token_tag}
lm_stats_dir=${expdir}/lm_stats_${token_tag}
lm_dir=${lm_exp:-${expdir}/lm_$(basename "${lm_config:-none}" .yaml)_${token_tag}}
if [ -n "${lm_exp}" ] && [ -n "${lm_config}" ]; then
    log "Error: give --lm_config (train an LM) or --lm_exp (use one), not both"; exit 2
fi
pretrain_dir=${expdir}/pretrain
if [ -n "${pretrain_config}" ] && [ -n "${pretrain_script}" ]; then
    log "Error: give --pretrain_config (CTC pretraining) or --pretrain_script, not both"; exit 2
fi
if [ -n "${pretrain_script}" ]; then
    [ -x "${pretrain_script}" ] || { log "Error: --pretrain_script ${pretrain_script} is not an executable file"; exit 2; }
    # an upstream given is used as it is: nothing to pretrain
    [ -z "${ssl_ckpt}" ] || pretrain_script=
fi
if { [ -n "${pretrain_config}" ] || [ -n "${pretrain_script}" ]; } && [ -z "${ssl_ckpt}" ]; then
    ssl_ckpt=${pretrain_dir}/upstream.pt
fi
[ -n "${asr_configs}" ] || { log "Error: --asr_configs is empty"; exit 2; }
[[ "${train_jobs}" =~ ^[1-9][0-9]*$ ]] || { log "Error: --train_jobs takes a positive integer, not '${train_jobs}'"; exit 2; }
if [ "${train_jobs}" -gt 1 ] && { [ "${ngpu}" -gt 0 ] || [ "${num_nodes}" -gt 1 ]; }; then
    log "Error: --train_jobs > 1 shares CPU cores; with --ngpu or --num_nodes, launch one run.sh per GPU (CUDA_VISIBLE_DEVICES) or allocation on a part of --asr_configs/--pruning_sweep"
    exit 2
fi
train_launcher=()
if [ "${num_nodes}" -gt 1 ]; then
    case "${dist_launcher}" in
        slurm) train_launcher=(srun --nodes "${num_nodes}" --ntasks-per-node 1) ;;
        mpi) train_launcher=(mpirun -np "${num_nodes}" --npernode 1) ;;
        *) log "Error: --num_nodes ${num_nodes} needs --dist_launcher slurm or mpi, not '${dist_launcher}'"; exit 2 ;;
    esac
fi
for conf in ${asr_configs} ${pretrain_config} ${lm_config} ${inference_config}; do
    [ -f "${conf}" ] || { log "Error: ${conf} does not exist"; exit 2; }
done
if [ -n "${distill_teacher}" ]; then
    [ -e "${distill_teacher}" ] || { log "Error: --distill_teacher ${distill_teacher} does not exist"; exit 2; }
    [[ "${pruning_sweep}" == *+distill* ]] || { log "Error: --distill_teacher needs a +distill point in --pruning_sweep"; exit 2; }
    # in a model's name: the file's (or directory's) stem, '_' made '-' so that _seed<N> stays the seed's
    teacher_tag=$(basename "${distill_teacher%/}" | sed -e 's/\.[^.]*$//' -e 's/[^A-Za-z0-9.-]/-/g')
fi

# whether a YAML config prunes (frontend_conf.pruning_conf set)
is_pruned() {
    ${python} -c 'import sys, yaml; c = yaml.safe_load(open(sys.argv[1])); sys.exit(0 if (c.get("frontend_conf") or {}).get("pruning_conf") else 1)' "$1"
}

for seed in ${seeds}; do
    [[ "${seed}" =~ ^[0-9]+$ ]] || { log "Error: --seeds takes non-negative integers, not '${seed}'"; exit 2; }
done
# the models: "<model dir>|<config>|<asr_train options of its sweep point and seed>"
models=()
add_model() {
    if [ -z "${seeds}" ]; then
        models+=("$1|$2|$3")
    else
        for seed in ${seeds}; do
            models+=("$1_seed${seed}|$2|$3 --seed ${seed}")
        done
    fi
}
# a sweep point: [<method>:<target>][+distill[<weight>]]
for point in ${pruning_sweep}; do
    [[ "${point}" =~ ^([A-Za-z_]+:[0-9.]+)?(\+distill[^+]*)?$ ]] && [ -n "${point}" ] \
        || { log "Error: --pruning_sweep point '${point}': expected <method>:<target>, <method>:<target>+distill<weight> or +distill<weight> (the weight optional)"; exit 2; }
    weight=${point#*+distill}
    [[ "${point}" != *+distill* || -z "${weight}" || "${weight}" =~ ^[0-9]*\.?[0-9]+$ ]] \
        || { log "Error: --pruning_sweep point '${point}': the distillation weight '${weight}' is not a number"; exit 2; }
done
for config in ${asr_configs}; do
    name=${expdir}/${task}_$(basename "${config}" .yaml)
    [ -n "${pruning_sweep}" ] || { add_model "${name}" "${config}" ""; continue; }
    pruned=false
    is_pruned "${config}" && pruned=true
    plain_done=false  # an unpruned config's own run, made once whatever the <method>:<target> points
    for point in ${pruning_sweep}; do
        prune=${point%%+*}
        options= suffix=
        if [ -n "${prune}" ] && ${pruned}; then
            method=${prune%%:*} target=${prune#*:}
            options="--frontend_conf pruning_conf.method=${method} --frontend_conf pruning_conf.target=${target}"
            suffix=_${method}${target}
        elif [ -n "${prune}" ]; then
            ${plain_done} || add_model "${name}" "${config}" ""
            plain_done=true
            continue
        fi
        if [[ "${point}" == *+distill* ]]; then
            weight=${point#*+distill}
            suffix=${suffix}_distill${weight}
            options="${options} --frontend_conf distill_conf.weight=${weight:-1.0}"
            if [ -n "${distill_teacher}" ]; then
                suffix=${suffix}-${teacher_tag}
                options="${options} --frontend_conf distill_conf.teacher_ckpt=${distill_teacher}"
            fi
        fi
        add_model "${name}${suffix}" "${config}" "${options# }"
    done
done

# the data of a training run: speech, the text file $1 of ${train_set} and ${valid_set}, and, for
# the SLU task's models ($2 = slu), their intents
data_files() {
    local text=$1 with_intent=$2 split dset
    for split in train valid; do
        dset=${train_set}
        [ "${split}" = valid ] && dset=${valid_set}
        echo --${split}_data_path_and_name_and_type "${datadir}/${dset}/wav.scp,speech,sound" \
            --${split}_data_path_and_name_and_type "${datadir}/${dset}/${text},text,text"
        if [ "${with_intent}" = slu ]; then
            echo --${split}_data_path_and_name_and_type "${datadir}/${dset}/intent,intent,text"
        fi
    done
}

# the shape files of a stats directory
shape_files() {
    local shapes=$1
    echo --train_shape_file "${shapes}/train/speech_shape" --train_shape_file "${shapes}/train/text_shape" \
        --valid_shape_file "${shapes}/valid/speech_shape" --valid_shape_file "${shapes}/valid/text_shape"
}

# collect_stats <out> <config> <train module> <data_files args> <token args...>: ESPnet's
# --collect_stats into <out> (written beside it, then moved into place)
collect_stats() {
    local out=$1 config=$2 module=$3 text=$4 with_intent=$5
    shift 5
    if [ -f "${out}/train/speech_shape" ] && [ -f "${out}/valid/text_shape" ]; then
        log "${out} exists; skipped"
        return
    fi
    rm -rf "${out}.tmp"
    mkdir -p "$(dirname "${out}")"
    # shellcheck disable=SC2046
    ${python} -m "${module}" --collect_stats true --config "${config}" --ngpu 0 \
        --num_workers 1 --use_preprocessor true --batch_type unsorted --output_dir "${out}.tmp" \
        --frontend_conf upstream_ckpt="${ssl_init:-${ssl_ckpt}}" $(data_files "${text}" "${with_intent}") \
        --train_shape_file "${datadir}/${train_set}/wav.scp" --valid_shape_file "${datadir}/${valid_set}/wav.scp" \
        "$@" > "${out}.log" 2>&1 || { log "Error: see ${out}.log"; exit 1; }
    mv "${out}.tmp" "${out}"
}

# token_list <type> <tokens.txt> <text name> [tokenize_text options]: ESPnet's tokenize_text
# vocabulary of ${train_set}'s text file, unless <tokens.txt> exists
token_list() {
    local type=$1 out=$2 text=$3
    shift 3
    [ -f "${out}" ] && return
    mkdir -p "$(dirname "${out}")"
    ${python} -m espnet_prune.bin.espnet espnet2.bin.tokenize_text --token_type "${type}" --input "${datadir}/${train_set}/${text}" \
        --output "${out}.tmp" --field 2- --write_vocabulary true \
        --add_symbol '<blank>:0' --add_symbol '<unk>:1' --add_symbol '<sos/eos>:-1' "$@"
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

# keep_log <file>: move an earlier run's log aside (<name>.1.log, .2.log, ...), so that re-running a
# stage, which resumes where the last run stopped, keeps its record (asr_results sums training times)
keep_log() {
    local file=$1 n=1
    [ -f "${file}" ] || return 0
    while [ -e "${file%.log}.${n}.log" ]; do n=$((n + 1)); done
    mv "${file}" "${file%.log}.${n}.log"
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
    log "Stage 2: token lists: ${char_dir} ($([ "${task}" = slu ] && echo "transcripts, ")for the stand-in), ${token_dir}/${token_tag}$([ "${task}" = slu ] && echo ", ${intent_list}")"
    token_list char "${char_dir}/tokens.txt" "${transcript_name}"
    if [ "${token_type}" = word ]; then
        token_list word "${word_dir}/tokens.txt" "${target_name}"
    elif [ "${token_type}" = bpe ] && [ ! -f "${bpe_dir}/tokens.txt" ]; then
        rm -rf "${bpe_dir}.tmp" && mkdir -p "${bpe_dir}.tmp"
        cut -f 2- -d ' ' "${datadir}/${train_set}/${target_name}" > "${bpe_dir}.tmp/train.txt"
        # sentencepiece's own trainer, with its command-line flags
        ${python} -c 'import sys, sentencepiece; sentencepiece.SentencePieceTrainer.train(" ".join(sys.argv[1:]))' \
            --input="${bpe_dir}.tmp/train.txt" --vocab_size="${nbpe}" --model_type="${bpemode}" --model_prefix="${bpe_dir}.tmp/bpe" --character_coverage=1.0 \
            --input_sentence_size=100000000
        rm "${bpe_dir}.tmp/train.txt"
        token_list bpe "${bpe_dir}.tmp/tokens.txt" "${target_name}" --bpemodel "${bpe_dir}.tmp/bpe.model"
        mv "${bpe_dir}.tmp" "${bpe_dir}"
    fi
    if [ "${task}" = slu ] && [ ! -f "${intent_list}" ]; then
        # the intent head's classes: the training set's intents
        cut -f 2- -d ' ' "${datadir}/${train_set}/intent" | sort -u > "${intent_list}.tmp"
        mv "${intent_list}.tmp" "${intent_list}"
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
    # the stand-in learns the plain transcripts with ASR's CTC, whatever the task
    collect_stats "${pretrain_dir}/stats" "${pretrain_config}" espnet_prune.bin.asr_train "${transcript_name}" asr \
        --token_type char --token_list "${char_dir}/tokens.txt"
    log "training: ${pretrain_dir}/train.log"
    # shellcheck disable=SC2046,SC2086
    ${python} -m espnet_prune.bin.asr_train --config "${pretrain_config}" --ngpu "${ngpu}" --resume true \
        --use_preprocessor true --token_type char --token_list "${char_dir}/tokens.txt" \
        --frontend_conf upstream_ckpt="${ssl_init}" --output_dir "${pretrain_dir}" \
        $(data_files "${transcript_name}" asr) $(shape_files "${pretrain_dir}/stats") ${pretrain_args} \
        > "${pretrain_dir}/train.log" 2>&1 || { log "Error: see ${pretrain_dir}/train.log"; exit 1; }
    ${python} -m espnet_prune.bin.export_upstream --config "${pretrain_dir}/config.yaml" \
        --model_file "${pretrain_dir}/valid.loss.best.pth" --out "${ssl_ckpt}"
    unset ssl_init
    stage_done 3
fi
if run_stage 3 && [ -n "${pretrain_script}" ]; then
    stage_start=${SECONDS}
    log "Stage 3: stand-in upstream: ${pretrain_script} -> ${ssl_ckpt}"
    # shellcheck disable=SC2086
    "${pretrain_script}" --dir "${pretrain_dir}" --train_args "${pretrain_args}" ${local_data_opts} \
        || { log "Error: ${pretrain_script} failed"; exit 1; }
    [ -f "${ssl_ckpt}" ] || { log "Error: ${pretrain_script} did not make ${ssl_ckpt}"; exit 1; }
    stage_done 3
fi

[ -n "${ssl_ckpt}" ] || { log "Error: give --ssl_ckpt (or --pretrain_config or --pretrain_script)"; exit 2; }
if run_stage 4 || run_stage 6; then
    [ -e "${ssl_ckpt}" ] || { log "Error: --ssl_ckpt ${ssl_ckpt} does not exist"; exit 1; }
fi

if run_stage 4; then
    stage_start=${SECONDS}
    log "Stage 4: statistics -> ${stats_dir}"
    first_config=${asr_configs%% *}
    # shellcheck disable=SC2086
    collect_stats "${stats_dir}" "${first_config}" "${train_module}" "${target_name}" "${task}" ${token_args} ${task_args}
    stage_done 4
fi

# lm_train <output dir> <log> <options...>: ESPnet's LM trainer on ${train_set}'s target text
lm_train() {
    local out=$1 logfile=$2
    shift 2
    # shellcheck disable=SC2086
    ${python} -m espnet_prune.bin.espnet espnet2.bin.lm_train --config "${lm_config}" --ngpu "${ngpu}" --num_workers 1 ${token_args} \
        --train_data_path_and_name_and_type "${datadir}/${train_set}/${target_name},text,text" \
        --valid_data_path_and_name_and_type "${datadir}/${valid_set}/${target_name},text,text" \
        --output_dir "${out}" "$@" > "${logfile}" 2>&1 || { log "Error: see ${logfile}"; exit 1; }
}

if run_stage 5 && [ -n "${lm_config}" ]; then
    stage_start=${SECONDS}
    log "Stage 5: language model (${lm_config}) of ${datadir}/${train_set}/${target_name} -> ${lm_dir}"
    mkdir -p "${lm_dir}"
    if [ ! -f "${lm_stats_dir}/train/text_shape" ]; then
        rm -rf "${lm_stats_dir}.tmp"
        lm_train "${lm_stats_dir}.tmp" "${lm_stats_dir}.log" --collect_stats true --batch_type unsorted \
            --train_shape_file "${datadir}/${train_set}/${target_name}" \
            --valid_shape_file "${datadir}/${valid_set}/${target_name}"
        mv "${lm_stats_dir}.tmp" "${lm_stats_dir}"
    fi
    log "training: ${lm_dir}/train.log"
    # shellcheck disable=SC2086
    lm_train "${lm_dir}" "${lm_dir}/train.log" --resume true --train_shape_file "${lm_stats_dir}/train/text_shape" \
        --valid_shape_file "${lm_stats_dir}/valid/text_shape" ${lm_args}
    stage_done 5
fi

# train_lane <k>: train models k, k + train_jobs, k + 2 train_jobs, ... one after the other
train_lane() {
    local k=$1 i dir config sweep_args stage_start dist_args
    for (( i = k; i < ${#models[@]}; i += train_jobs )); do
        IFS='|' read -r dir config sweep_args <<< "${models[i]}"
        stage_start=${SECONDS}
        log "Stage 6: training ${dir} (${config} ${sweep_args}); log: ${dir}/train.log"
        mkdir -p "${dir}"
        keep_log "${dir}/train.log"
        dist_args=
        if [ "${num_nodes}" -gt 1 ]; then
            # every node's task must name the same, not yet existing file
            dist_args="--dist_launcher ${dist_launcher} --multiprocessing_distributed true --dist_init_method file://$(cd "${dir}" && pwd)/.dist_init_$(date +%s%N)"
        fi
        # shellcheck disable=SC2046,SC2086
        "${train_launcher[@]}" ${python} -m "${train_module}" --config "${config}" --ngpu "${ngpu}" --resume true \
            --use_preprocessor true ${token_args} ${task_args} --frontend_conf upstream_ckpt="${ssl_ckpt}" --output_dir "${dir}" \
            $(data_files "${target_name}" "${task}") $(shape_files "${stats_dir}") ${sweep_args} ${dist_args} ${train_args} \
            > "${dir}/train.log" 2>&1 || { log "Error: see ${dir}/train.log"; return 1; }
        log "Stage 6: ${dir} trained in $(( SECONDS - stage_start )) s"
    done
}

if run_stage 6; then
    stage_start=${SECONDS}
    [ -f "${stats_dir}/train/speech_shape" ] || { log "Error: ${stats_dir} is missing (stage 4 makes it)"; exit 1; }
    if [ "${train_jobs}" -eq 1 ]; then
        train_lane 0 || exit 1
    else
        # CPU lanes share the cores (unless OMP_NUM_THREADS says otherwise); each lane's failure is its own
        lane_threads=$(( $(nproc) / train_jobs ))
        lane_threads=${OMP_NUM_THREADS:-$(( lane_threads > 0 ? lane_threads : 1 ))}
        lanes=()
        for (( k = 0; k < train_jobs; k++ )); do
            ( export OMP_NUM_THREADS=${lane_threads}; train_lane "${k}" ) &
            lanes+=($!)
        done
        failed=0
        for pid in "${lanes[@]}"; do
            wait "${pid}" || failed=1
        done
        [ "${failed}" -eq 0 ] || { log "Error: a training failed (its log is named above)"; exit 1; }
    fi
    stage_done 6
fi

if run_stage 7; then
    stage_start=${SECONDS}
    for model in "${models[@]}"; do
        dir=${model%%|*}
        if is_pruned "${dir}/config.yaml"; then
            log "Stage 7: shrinking ${dir}/${inference_model} -> ${dir}/shrunk"
            ${python} -m "${shrink_module}" --config "${dir}/config.yaml" \
                --model_file "${dir}/${inference_model}" --out_dir "${dir}/shrunk"
        else
            log "Stage 7: ${dir} is not pruned; nothing to shrink"
        fi
    done
    stage_done 7
fi

inference_tag=$(basename "${inference_config}" .yaml)
lm_decode_args=
if [ -n "${lm_config}" ] || [ -n "${lm_exp}" ]; then
    for f in config.yaml valid.loss.ave.pth; do
        [ -f "${lm_dir}/${f}" ] || ! run_stage 8 || { log "Error: no ${lm_dir}/${f}"; exit 1; }
    done
    inference_tag=${inference_tag}_$(basename "${lm_dir}")
    lm_decode_args="--lm_train_config ${lm_dir}/config.yaml --lm_file ${lm_dir}/valid.loss.ave.pth"
fi
if run_stage 8; then
    stage_start=${SECONDS}
    for model in "${models[@]}"; do
        dir=${model%%|*}
        read -r model_config model_file <<< "$(model_files "${dir}")"
        for dset in ${test_sets}; do
            log "Stage 8: decoding ${datadir}/${dset} with ${model_file} -> ${dir}/${inference_tag}/${dset}"
            # shellcheck disable=SC2086
            ${python} -m espnet_prune.bin.asr_decode --asr_train_config "${model_config}" \
                --asr_model_file "${model_file}" --decode_config "${inference_config}" ${lm_decode_args} \
                --data_dir "${datadir}/${dset}" --out_dir "${dir}/${inference_tag}/${dset}" --nj "${nj}"
        done
    done
    stage_done 8
fi

if run_stage 9; then
    stage_start=${SECONDS}
    for model in "${models[@]}"; do
        dir=${model%%|*}
        for dset in ${test_sets}; do
            decoded=${dir}/${inference_tag}/${dset}
            log "Stage 9: scoring ${decoded}"
            [ -f "${decoded}/text" ] || { log "Error: ${decoded}/text is missing (stage 8 makes it)"; exit 1; }
            if [ "${task}" = asr ]; then
                ${python} -m espnet_prune.bin.score_asr --ref "${datadir}/${dset}/text" \
                    --hyp "${decoded}/text" --utt2spk "${datadir}/${dset}/utt2spk" --out "${decoded}/score_wer"
            else
                # the intent head's intents; entities and transcript from the decoded text
                ${python} -m espnet_prune.bin.score_slurp --gold_dir "${datadir}/${dset}" --hyp "${decoded}/text" \
                    --hyp_intent "${decoded}/intent" --train_intents "${datadir}/${train_set}/intent" \
                    --out "${decoded}/score_slu"
            fi
        done
    done
    stage_done 9
fi

if run_stage 10; then
    stage_start=${SECONDS}
    log "Stage 10: ${results}"
    dirs=
    for model in "${models[@]}"; do
        dirs="${dirs} ${model%%|*}"
    done
    # shellcheck disable=SC2086
    ${python} -m espnet_prune.bin.asr_results --exp_dirs ${dirs} --inference_tag "${inference_tag}" \
        --test_sets ${test_sets} --out "${results}" --plots_dir "${results%.md}_plots" --task "${task}"
    stage_done 10
fi

log "Successfully finished"
