#!/usr/bin/env bash
# The GPU check, prepared for when a GPU machine is lent (<= 8 minutes on one GPU), and its CPU dry
# run (tests/test_recipe_synth.py runs it, so that it cannot rot). Four steps, one report:
#   1 facts        nvidia-smi, python, torch, the device
#   2 shrink speed dense vs shrunk upstream (benchmarks/shrink_speed.py), fp32, fp16, bf16 (CPU: fp32),
#                  batch 1 (bound by kernel launches on a GPU) and batch 16
#   3 planned step one training step of egs2/librispeech_100's pruned model at the batch its config
#                  plans (batch_bins, in utterances of 15 s) under autocast, peak memory against the
#                  prediction of benchmarks/RESULTS_memory_plan.json (benchmarks/memory_plan.py)
#   4 ESPnet       the synthetic recipe's pruned model trains a few steps through ESPnet's trainer on
#                  the device (--ngpu 1, use_amp), from its --ci data (stages 1-2 need espeak-ng: make
#                  them here and carry the data directory)
#
#   bash benchmarks/device_check.sh --device cuda --out DIR     on the GPU machine
#   bash benchmarks/device_check.sh --device cpu --preset tiny --batch 2x2 --out DIR    the dry run
#
# Before it runs on a GPU machine: (cd egs2/synth_librispeech/asr1 && ./run.sh --ci true --stop_stage 2),
# and a tools/venv there (README, "On a GPU cluster": a venv over the machine's own torch, with the
# other packages of tools/constraints.txt as wheels). Report: DIR/device_check.md; logs beside it.
set -euo pipefail

device=cuda
preset=base
batch=         # BxS: B utterances of S seconds (default: the config's batch_bins in 15 s utterances)
steps=10
out=
recipe=egs2/synth_librispeech/asr1
while [ $# -gt 0 ]; do
    case "$1" in
        --device|--preset|--batch|--steps|--out|--recipe)
            [ $# -ge 2 ] || { echo "$0: $1 needs a value" >&2; exit 2; }
            declare "${1#--}=$2"
            shift 2 ;;
        *) echo "$0: unknown option $1 (see the header of $0)" >&2; exit 2 ;;
    esac
done
[ -n "${out}" ] || { echo "$0: give --out DIR" >&2; exit 2; }
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export MAIN_ROOT=${root}  # the recipe's path.sh finds tools/venv by it, wherever the recipe is
python=${root}/tools/venv/bin/python
[ -x "${python}" ] || { echo "$0: ${python} is missing (tools/install.sh, or the README's GPU venv)" >&2; exit 1; }
recipe=$(cd "${recipe}" && pwd)
mkdir -p "${out}"
out=$(cd "${out}" && pwd)
report=${out}/device_check.md
start=${SECONDS}
config=${root}/egs2/librispeech_100/asr1/conf/train_asr_pruned.yaml
if [ -z "${batch}" ]; then
    bins=$("${python}" -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["batch_bins"])' "${config}")
    batch="$(( bins / (15 * 16000) ))x15"
fi
dtypes="fp32"
precision=bf16
speed_batch=2
runs_1=5
runs_b=2
if [ "${device}" = cuda ]; then
    dtypes="fp32 fp16 bf16"
    speed_batch=16
    runs_1=30  # a few ms a pass: the median of many
    runs_b=10
fi

{
    echo "# Device check ($(date -u '+%Y-%m-%dT%H:%M:%SZ'), --device ${device} --preset ${preset} --batch ${batch})"
    echo
    echo "## 1 facts"
    echo
    echo '```'
    if command -v nvidia-smi > /dev/null; then
        nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
    else
        echo "nvidia-smi: not found"
    fi
    "${python}" -c 'import platform, torch; print("python", platform.python_version(), "torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available()); torch.cuda.is_available() and print(torch.cuda.get_device_name(0))'
    echo '```'
} > "${report}"
echo "[device_check] 1 facts done ($(( SECONDS - start )) s)"

{
    echo
    echo "## 2 shrink speed (dense vs shrunk ${preset} upstream, 10 s input)"
    echo
    echo '```'
    for dtype in ${dtypes}; do
        for batch_runs in "1 ${runs_1}" "${speed_batch} ${runs_b}"; do
            read -r b r <<< "${batch_runs}"
            "${python}" "${root}/benchmarks/shrink_speed.py" --preset "${preset}" --device "${device}" --dtype "${dtype}" --batch "${b}" --runs "${r}"
        done
    done
    echo '```'
} >> "${report}" 2> "${out}/shrink_speed.log"
echo "[device_check] 2 shrink speed done ($(( SECONDS - start )) s)"

{
    echo
    echo "## 3 one training step at the planned batch (${batch}, CNN trained, ${precision} autocast)"
    echo
    "${python}" "${root}/benchmarks/memory_plan.py" --config "${config}" --preset "${preset}" --device "${device}" \
        --precisions "${precision}" --cnn trained --grid "${batch}" --fits "${root}/benchmarks/RESULTS_memory_plan.json"
} >> "${report}" 2> "${out}/memory_step.log"
echo "[device_check] 3 planned step done ($(( SECONDS - start )) s)"

# 4: into a directory of its own; the --ci run's statistics are reused when it has made them
expdir=exp_device_check
ngpu=0
amp=false
if [ "${device}" = cuda ]; then
    ngpu=1
    amp=true
fi
[ -f "${recipe}/data_ci/train_clean_100/wav.scp" ] || {
    echo "$0: ${recipe}/data_ci is missing: (cd ${recipe} && ./run.sh --ci true --stop_stage 2) on a machine with espeak-ng" >&2
    exit 1
}
rm -rf "${recipe:?}/${expdir}"
mkdir -p "${recipe}/${expdir}"
if [ -f "${recipe}/exp_ci/asr_stats_char/train/speech_shape" ]; then
    cp -r "${recipe}/exp_ci/asr_stats_char" "${recipe}/${expdir}/"
fi
common=(--ci true --expdir "${expdir}" --ssl_ckpt pretrained/ctc_standin.safetensors --asr_configs conf/train_asr_mac0.5.yaml)
(
    cd "${recipe}"
    ./run.sh "${common[@]}" --stage 4 --stop_stage 4
    ./run.sh "${common[@]}" --stage 6 --stop_stage 6 --ngpu "${ngpu}" \
        --train_args "--max_epoch 1 --num_iters_per_epoch ${steps} --use_amp ${amp}"
) > "${out}/espnet_train.log" 2>&1 || { echo "$0: step 4 failed; see ${out}/espnet_train.log" >&2; exit 1; }
train_log=${recipe}/${expdir}/asr_train_asr_mac0.5/train.log
cp "${train_log}" "${out}/espnet_train_model.log"
{
    echo
    echo "## 4 ESPnet training on the device (synthetic recipe, pruned model, ${steps} steps, --ngpu ${ngpu}, use_amp ${amp})"
    echo
    echo '```'
    grep -E "1epoch results" "${train_log}" | sed -E 's/.*\[train\] /train: /; s/, \[valid\] /\nvalid: /'
    echo '```'
    echo
    echo "done in $(( SECONDS - start )) s"
} >> "${report}"
echo "[device_check] 4 ESPnet training done ($(( SECONDS - start )) s); report: ${report}"
