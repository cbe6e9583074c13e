#!/usr/bin/env bash
# The prepared one-call GPU run (README "Run on a lent GPU"): from the repository root of a copy
# of the working tree, with nothing installed and no network, in one command of at most 9 min:
#
#   build    mind_engine._C with CMake for this GPU's architecture only (nvidia-smi compute_cap)
#   tests    the CUDA and compiled-Triton kernel tests, the operator and self-check tests, and
#            the tier tests on the GPU against tier 0 (MIND_ENGINE_TEST_DEVICE=cuda)
#   memcheck the CUDA kernel tests once more under compute-sanitizer --tool memcheck
#   latency  bench/latency.py: semi-dense 384x128 at R=32 and R=None, t0, is_grads_batched,
#            t1-t3 and the T4 variants, with exactness columns against t0
#   precision bench/precision.py: bf16 and fp16 against fp32 on every semi-dense query
#   train    the bundled model's network fine-tuned for the seconds left (clips made on the
#            spot by bench/pan_clip.py plus synthetic motion), exported as safetensors
#
# Files back (8 at most): device_run.log, stages.json, tests_cuda.log, memcheck.log,
# latency_cuda_r32.json, latency_cuda_rNone.json, precision_cuda.json, weights.safetensors.
# Every stage writes its files to $OUT as it finishes and appends its exit status and time to
# $OUT/stages.json, so a timeout loses only the stage in flight. BUDGET (seconds, default 540)
# bounds the whole run; each stage gets what is left less a reserve for the ones after it.
#
#   bench/device_run.sh               # on the GPU machine ($OUT set by the device tool)
#   bench/device_run.sh --dry-run     # on the CPU: tiny sizes, a CPU-only debug build that is not
#                                     # installed, no memcheck (tests/test_device_run.py)
set -uo pipefail
cd "$(dirname "$0")/.."

DRY=0
[[ "${1:-}" == "--dry-run" || "${DEVICE_RUN_DRY:-0}" == "1" ]] && DRY=1
OUT="${OUT:-$PWD/device_out}"
BUDGET="${BUDGET:-540}"
PY="${PYTHON:-python3}"
mkdir -p "$OUT"
START=$(date +%s)
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
LOG="$OUT/device_run.log"
: >"$LOG"
echo "[" >"$OUT/stages.json"

left() { echo $((BUDGET - ($(date +%s) - START))); }
say() { echo "[$(($(date +%s) - START))s] $*" | tee -a "$LOG"; }

# stage NAME RESERVE CAP FILE CMD...: run CMD, its output appended to FILE, for at most
# min(CAP, time left - RESERVE) seconds.
stage() {
  local name=$1 reserve=$2 cap=$3 file=$4
  shift 4
  local t=$(($(left) - reserve))
  ((t > cap)) && t=$cap
  if ((t < 5)); then
    say "$name: skipped, $(left) s left"
    echo "{\"stage\": \"$name\", \"rc\": null, \"seconds\": 0, \"skipped\": true}," >>"$OUT/stages.json"
    return 1
  fi
  say "$name: start (limit $t s)"
  local s=$(date +%s)
  timeout -k 5 "$t" "$@" >>"$file" 2>&1
  local rc=$?
  say "$name: rc=$rc in $(($(date +%s) - s)) s"
  echo "{\"stage\": \"$name\", \"rc\": $rc, \"seconds\": $(($(date +%s) - s))}," >>"$OUT/stages.json"
  return $rc
}

build() {  # run by stage in a child bash (timeout runs programs, not functions)
  local dir=build/device archs=""
  if ((DRY)); then
    dir=$(mktemp -d)
  else
    archs=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d ' .')
    export PATH="$PATH:/usr/local/cuda/bin"
  fi
  echo "compute capability: ${archs:-none (dry run: CPU-only build)}"
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=$( ((DRY)) && echo Debug || echo Release) -DPython_EXECUTABLE="$(command -v "$PY")" \
    -Dpybind11_DIR="$("$PY" -m pybind11 --cmakedir)" -DCMAKE_LIBRARY_OUTPUT_DIRECTORY="$dir/lib" \
    $( ((DRY)) && echo -DMIND_ENGINE_NO_CUDA=ON || echo "-DMIND_ENGINE_CUDA_ARCHS=$archs") &&
    cmake --build "$dir" -j "$(nproc)" || return 1
  if ((DRY)); then
    ls "$dir"/lib/_C*.so && rm -rf "$dir"  # built and found; the installed module stays in use
  else
    cp "$dir"/lib/_C*.so mind_engine/ &&
      "$PY" -c "import mind_engine._C as C; assert C.cuda_available(), 'built without usable CUDA'; print('CUDA kernels built')"
  fi
}

KERNEL_TESTS="tests/test_window_ops.py tests/test_match_reduce.py tests/test_input_backward_match.py"
if ((DRY)); then
  DEV=cpu SIZE=64x32 TESTS="tests/test_selfcheck.py::test_the_check_passes_for_the_real_kernels"
  TRAIN="--size 64x32 --batch-size 2 --val-size 2 --synthetic 0 --threads 1" FRAMES="--frames 12 --size 96x64"
  LAT="--only t3 t3-bf16 --sample 1 --t0-sample 1 --threads 1" PREC="--precision bf16 --sample 2 --radii 32 --threads 1"
else
  DEV=cuda SIZE=384x128 TESTS="$KERNEL_TESTS tests/test_selfcheck.py tests/test_ops_registration.py tests/test_tiers.py"
  TRAIN="--size 256x128 --batch-size 16 --val-size 32 --synthetic 0.5 --amp on" FRAMES="--frames 60 --size 480x320"
  LAT="--only t0 vjp t1 t2 t3 t3-bf16 t3-fp16 --sample 0 --t0-sample 8 --repeats 2"
  PREC="--precision bf16 fp16 --sample 0"
fi
say "device_run: dry=$DRY device=$DEV budget=$BUDGET s out=$OUT"
((DRY)) || nvidia-smi >>"$LOG" 2>&1

stage build 420 150 "$LOG" bash -c "$(declare -f build); DRY=$DRY PY='$PY' build"

# shellcheck disable=SC2086
stage tests 330 200 "$OUT/tests_$DEV.log" env MIND_ENGINE_TEST_DEVICE=$DEV "$PY" -m pytest -q -rs $TESTS

if ((DRY)); then
  say "memcheck: dry run, compute-sanitizer not run"
else
  # shellcheck disable=SC2086
  stage memcheck 260 120 "$OUT/memcheck.log" compute-sanitizer --tool memcheck --error-exitcode 99 \
    "$PY" -m pytest -q -x $KERNEL_TESTS -k "cpp-cuda"
fi

for R in 32 None; do  # one file per radius: a timeout at R=None keeps R=32's
  # shellcheck disable=SC2086
  reserve=120
  [[ $R == 32 ]] && reserve=200
  stage "latency R=$R" $reserve 150 "$LOG" "$PY" bench/latency.py --device $DEV --size $SIZE \
    --jobs semi-dense --radii $R --models default \
    $LAT --out "$OUT/latency_${DEV}_r$R.json"
done

# shellcheck disable=SC2086
stage precision 90 $((DRY ? 200 : 60)) "$LOG" "$PY" bench/precision.py --device $DEV --size $SIZE $PREC \
  --out "$OUT/precision_$DEV.json"

TMP=$(mktemp -d)
# shellcheck disable=SC2086
stage clips 60 60 "$LOG" "$PY" bench/pan_clip.py "$TMP/clips" $FRAMES
TRAIN_S=$(($(left) - 45))  # validation, export and the process's start and end take the rest
((DRY)) && TRAIN_S=3
# shellcheck disable=SC2086
stage train 5 100000 "$LOG" "$PY" -m mind_engine.training --init default \
  --data "$TMP"/clips/* $TRAIN --max-seconds "$TRAIN_S" \
  --steps 1000000 --val-every 100 --ckpt-every 0 --ckpt-dir "$TMP/ckpt" --device $DEV --no-progress \
  --export "$OUT/weights.safetensors"
rm -rf "$TMP"

echo "{\"stage\": \"end\", \"seconds\": $(($(date +%s) - START))}]" >>"$OUT/stages.json"
say "device_run: done in $(($(date +%s) - START)) s"
