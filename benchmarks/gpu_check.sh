#!/usr/bin/env bash
# The CUDA path in one go, on a machine with an NVIDIA GPU and PyTorch + CUDA but no registry.
#
#   benchmarks/gpu_check.sh [LOG_DIR]        (default: $OUT, else /tmp/gpu_check)
#
# 1. installs pylsl, mne, nibabel, nilearn, pybv (+ pooch, platformdirs, decorator) from the
#    wheels in .whl/ beside the working tree, when they are not importable already;
# 2. the test suite's gpu-marked tests: the ring's CUDA mirror, online == offline on CUDA
#    (a real LSL replay into the engine), DDP + NCCL under torchrun (world size 1);
# 3. bench_latency.py on CPU and CUDA side by side; bench_models.py on CUDA;
#    bench_training.py on CUDA in fp32 and bf16 (and conv on the CPU, the same run);
# 4. one leave-one-subject-out fold of conv at the oddball shape (16 subjects × 6 runs,
#    simulated here at 250 Hz while steps 2-3 run on other cores), timed end to end; then
#    bench_loading.py on its window cache (batches one by one vs prepared on threads).
#
# Every step has a time limit inside one overall deadline (GPU_CHECK_SECONDS, default 560),
# so a slow step cannot take the others' logs with it; each step's output goes to
# LOG_DIR/gpu_check.log as it runs. GPU_CHECK_STEPS picks steps (default: all of "tests
# latency models training fold"), e.g. "tests latency fold" to give the fold the time the
# benchmarks measured before would take. GPU_CHECK_QUICK=1 runs every step at a toy size
# (to try the script on a CPU machine: the CUDA steps then run on the CPU or skip).
#
# Wheels (on a machine with pip and a registry, in the repository's root):
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#     --implementation cp --platform manylinux_2_35_x86_64 --platform manylinux_2_17_x86_64 \
#     -d .whl pylsl==1.18.6 mne==1.13.2 nibabel==5.4.2 nilearn==0.14.1 pybv==0.8.1 \
#     pooch==1.9.0 platformdirs decorator==5.3.1
set -uo pipefail
cd "$(dirname "$0")/.."
LOG_DIR=${1:-${OUT:-/tmp/gpu_check}}
mkdir -p "$LOG_DIR"
LOG=$LOG_DIR/gpu_check.log
PY=${PYTHON:-python3}
QUICK=${GPU_CHECK_QUICK:-0}
STEPS=" ${GPU_CHECK_STEPS:-tests latency models training fold} "
want() { [[ $STEPS == *" $1 "* ]]; }
DEADLINE=$((SECONDS + ${GPU_CHECK_SECONDS:-560}))
WORK=${GPU_CHECK_WORK:-/tmp/gpu_check_work}
export PYTHONUNBUFFERED=1 QT_QPA_PLATFORM=offscreen RT_EEG2FMRI_CACHE=$WORK/cache
rm -rf "$WORK" && mkdir -p "$WORK"
: >"$LOG"

say() { echo "[$(date -u +%T) +${SECONDS}s] $*" | tee -a "$LOG"; }

# step NAME LIMIT_S COMMAND...: run with the smaller of LIMIT_S and the time left
step() {
    local name=$1 limit=$2 left=$((DEADLINE - SECONDS))
    shift 2
    ((left < limit)) && limit=$left
    if ((limit < 5)); then
        say "SKIP $name: the deadline is reached"
        return 1
    fi
    say "BEGIN $name (limit ${limit}s): $*"
    local t0=$SECONDS rc
    timeout --kill-after=5 "$limit" "$@" >>"$LOG" 2>&1
    rc=$?
    say "END $name rc=$rc in $((SECONDS - t0))s"
    return $rc
}

# the cores: benchmarks on the first half, the background simulation on the second
NCPU=$(nproc)
HALF=$((NCPU / 2 > 0 ? NCPU / 2 : 1))
PIN=() PIN_BG=()
if command -v taskset >/dev/null && ((NCPU >= 4)); then
    PIN=(taskset -c 0-$((HALF - 1))) PIN_BG=(taskset -c "$HALF"-$((NCPU - 1)))
fi

if ! "$PY" -c "import pylsl, mne, nibabel, nilearn, pybv" 2>/dev/null; then
    say "installing the carried wheels: $(ls .whl 2>/dev/null | tr '\n' ' ')"
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$WORK/site" .whl/*.whl >>"$LOG" 2>&1 || say "wheel install failed"
    export PYTHONPATH=$WORK/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-}
{
    nvidia-smi 2>&1 || echo "no nvidia-smi"
    "$PY" -c "import sys, torch, numpy, mne, pylsl; print(sys.version); print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '-'); print('numpy', numpy.__version__, 'mne', mne.__version__, 'pylsl', pylsl.__version__, 'liblsl', pylsl.library_version())"
    echo "cores: $NCPU, benchmarks on 0-$((HALF - 1)), simulation on $HALF-$((NCPU - 1))"
} >>"$LOG" 2>&1
CUDA=$("$PY" -c "import torch; print('cuda' if torch.cuda.is_available() else 'cpu')")
say "device for the CUDA steps: $CUDA"

# 4a. the fold's data, simulated in the background while the GPU steps run
SIM_PID=
if ! want fold; then
    :
elif [[ $QUICK == 1 ]]; then
    SIM=(--preset tiny --subjects 3 --runs 2)
else
    SIM=(--preset oddball --sfreq 250 --jobs $((NCPU - HALF)))
fi
if want fold; then
    say "BEGIN simulate (background): ${SIM[*]}"
    (
        t0=$SECONDS
        "${PIN_BG[@]}" "$PY" -m apps.cli simulate "${SIM[@]}" --out "$WORK/odd" --no-progress \
            >"$WORK/simulate.log" 2>&1
        echo "rc=$? in $((SECONDS - t0))s" >>"$WORK/simulate.log"
    ) &
    SIM_PID=$!
fi

# 2. the gpu-marked tests (CUDA mirror, online == offline on CUDA, DDP + NCCL)
want tests && step tests 150 "${PIN[@]}" "$PY" -m pytest -q -p no:cacheprovider -m gpu -rs tests

# 3. benchmarks, CPU and CUDA side by side where a script measures both
if [[ $QUICK == 1 ]]; then
    LAT=(--volumes 6 --speed 8) MOD=(--rates 250 --repeats 5) TRN=(--batches 2)
else
    LAT=(--volumes 40 --speed 4) MOD=(--rates 250 1000 --repeats 100) TRN=(--batches 10)
fi
want latency && step latency 120 "${PIN[@]}" "$PY" benchmarks/bench_latency.py --devices "cpu,$CUDA" "${LAT[@]}" \
    --json "$LOG_DIR/latency.json"
want models && step models 100 "${PIN[@]}" "$PY" benchmarks/bench_models.py --device "$CUDA" "${MOD[@]}"
want training && step training 110 "${PIN[@]}" "$PY" benchmarks/bench_training.py --device "$CUDA" --amp both \
    "${TRN[@]}" --json "$LOG_DIR/training_cuda.json"
want training && step training_cpu 40 "${PIN[@]}" "$PY" benchmarks/bench_training.py --device cpu --models conv \
    --batches 3 --json "$LOG_DIR/training_cpu.json"

# 4b. one LOSO fold of conv (test subject 01, validation 02), the README table's settings
if want fold; then
    say "waiting for the simulation"
    wait "$SIM_PID"
    cat "$WORK/simulate.log" >>"$LOG"
    [[ $QUICK == 1 ]] && FOLD=(--set winsize=8.0 --epochs 2) || FOLD=(--sfreq 250)
    [[ $QUICK == 1 ]] && LOAD=(--set winsize=8.0) || LOAD=(--set sfreq=250)
    step loso_fold 600 "$PY" -m apps.cli train --config configs/oddball_loso.toml \
        --data "$WORK/odd" --out "$WORK/fold" --model conv --test-subjects 01 \
        --device "$CUDA" --no-progress "${FOLD[@]}"
    cp "$WORK/fold/metrics.json" "$LOG_DIR/loso_metrics.json" 2>/dev/null
    cp "$WORK/fold/report.md" "$LOG_DIR/loso_report.md" 2>/dev/null
    # the loop's data ceiling on the fold's window cache: batches prepared one by one vs
    # ahead on threads into page-locked memory
    step loading 90 "$PY" benchmarks/bench_loading.py --config configs/oddball_loso.toml \
        --data "$WORK/odd" "${LOAD[@]}" --device "$CUDA" --threads 0,1,2,4,8 --repeats 1
fi
say "done"
