#!/usr/bin/env bash
# The self-supervised stand-in: HuBERT masked prediction (iteration 1) on a synthetic corpus's
# train-clean-100 + train-clean-360 audio, never its transcripts:
#   wav.scp -> MFCC k-means -> one label per 20 ms frame -> random-init HuBERT -> ESPnet's trainer
#   -> <dir>/upstream.pt (S3PRL's converted format, pretraining heads included)
# Every step keeps its finished output, and training resumes from its last epoch.
#
# Stage 3 of `./run.sh` (the self-supervised stand-in, not --demo) runs it as
#   local/pretrain_hubert.sh --dir exp/pretrain --train_args "..." --size small
#
# Options:
#   --dir DIR            where everything goes
#   --corpus DIR         a synth_corpus --layout librispeech corpus with train-clean-360 (default:
#                        synthesise downloads/synth_<size>_seed<seed>)
#   --size SIZE, --nj N  that corpus's size (default small) and synthesis processes (default: the cores)
#   --seed N             the corpus's, the k-means' and the initial model's seed (default 0)
#   --num_clusters K     k-means clusters (default 100)
#   --preset NAME        make_upstream preset of the initial model (default ssl)
#   --config CONF        hubert_train config (default conf/pretrain_hubert.yaml)
#   --train_args "..."   extra hubert_train options
set -euo pipefail

corpus=
dir=
size=small
nj=$(nproc)
num_clusters=100
preset=ssl
seed=0
config=conf/pretrain_hubert.yaml
train_args=

. ./path.sh
. utils/parse_options.sh

[ -n "${dir}" ] || { echo "$0: give --dir" >&2; exit 2; }
log() { echo "$(date '+%F %T') $*"; }
data=${dir}/data
mkdir -p "${dir}"

if [ -z "${corpus}" ]; then
    corpus=downloads/synth_${size}_seed${seed}
    log "corpus: ${corpus}"
    # synth_corpus writes the corpus beside its final place and renames it; a finished one is kept
    ${python} -m espnet_prune.bin.synth_corpus --layout librispeech --out "${corpus}" --seed "${seed}" \
        --size "${size}" --nj "${nj}"
fi

if [ ! -f "${data}/train_ssl/wav.scp" ]; then
    log "data directories"
    ${python} -m espnet_prune.bin.prep_librispeech --root "${corpus}" --out "${data}" \
        --subsets train-clean-100 train-clean-360 dev-clean
    # audio only: the transcripts stay behind
    mkdir -p "${data}/train_ssl.tmp"
    cat "${data}/train_clean_100/wav.scp" "${data}/train_clean_360/wav.scp" | LC_ALL=C sort \
        > "${data}/train_ssl.tmp/wav.scp"
    rm -rf "${data}/train_ssl"
    mv "${data}/train_ssl.tmp" "${data}/train_ssl"
fi
if [ ! -f "${dir}/kmeans.npy" ]; then
    log "k-means of MFCC frames (K=${num_clusters})"
    ${python} -m espnet_prune.bin.hubert_labels fit --wav_scp "${data}/train_ssl/wav.scp" \
        --num_clusters "${num_clusters}" --seed "${seed}" --out "${dir}/kmeans.npy"
fi
for set in train_ssl dev_clean; do
    if [ ! -f "${data}/${set}/labels" ]; then
        log "labels of ${set}"
        ${python} -m espnet_prune.bin.hubert_labels dump --wav_scp "${data}/${set}/wav.scp" \
            --kmeans "${dir}/kmeans.npy" --out "${data}/${set}/labels"
    fi
done
if [ ! -f "${dir}/init.pt" ]; then
    ${python} -m espnet_prune.bin.make_upstream --arch hubert --preset "${preset}" --seed "${seed}" \
        --num_classes "${num_clusters}" --out "${dir}/init.pt"
fi

data_args=()
for pair in "train train_ssl" "valid dev_clean"; do
    read -r split set <<< "${pair}"
    data_args+=(--${split}_data_path_and_name_and_type "${data}/${set}/wav.scp,speech,sound"
                --${split}_data_path_and_name_and_type "${data}/${set}/labels,labels,text_int")
done
if [ ! -f "${dir}/stats/train/speech_shape" ]; then
    log "shapes"
    ${python} -m espnet_prune.bin.hubert_train --config "${config}" --ngpu 0 --num_workers 0 \
        --collect_stats true --batch_type unsorted --model_conf upstream_ckpt="${dir}/init.pt" \
        "${data_args[@]}" --output_dir "${dir}/stats.tmp" \
        --train_shape_file "${data}/train_ssl/wav.scp" --valid_shape_file "${data}/dev_clean/wav.scp" \
        > "${dir}/stats.log" 2>&1
    rm -rf "${dir}/stats"
    mv "${dir}/stats.tmp" "${dir}/stats"
fi
log "training: ${dir}/exp/train.log"
mkdir -p "${dir}/exp"
# shellcheck disable=SC2086
${python} -m espnet_prune.bin.hubert_train --config "${config}" --ngpu 0 --num_workers 0 --resume true \
    --model_conf upstream_ckpt="${dir}/init.pt" "${data_args[@]}" --output_dir "${dir}/exp" \
    --train_shape_file "${dir}/stats/train/speech_shape" --train_shape_file "${dir}/stats/train/labels_shape" \
    --valid_shape_file "${dir}/stats/valid/speech_shape" --valid_shape_file "${dir}/stats/valid/labels_shape" \
    ${train_args} >> "${dir}/exp/train.log" 2>&1
${python} -m espnet_prune.bin.export_upstream --config "${dir}/exp/config.yaml" \
    --model_file "${dir}/exp/valid.acc_m.best.pth" --out "${dir}/upstream.pt"
log "done: ${dir}/upstream.pt"
