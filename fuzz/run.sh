#!/usr/bin/env bash
# Runs every libFuzzer target of a VIGIL_FUZZ build for a bounded time:
#   fuzz/run.sh <build dir> [seconds per target]        (`make fuzz` calls it)
# Each target starts from its seed corpus (fuzz/corpus/<target>) and the inputs of earlier runs
# (<build dir>/corpus/<target>, where new ones are saved). A crash, a sanitizer report, a failed
# property, a leak or an input running over 10 s stops that target and leaves the input in
# <build dir>/crashes/<target>/; make it a regression test by copying it to
# fuzz/regressions/<target>/ (the test suite replays those) and fixing the bug.
set -uo pipefail
build="${1:?usage: fuzz/run.sh <build dir> [seconds per target]}"
seconds="${2:-60}"
# FUZZ_SEED fixes libFuzzer's random seed, so that a run can be repeated (CI uses one: its
# verdict then depends on the code, not on the draw); unset, each run draws its own.
seed=()
[[ -n "${FUZZ_SEED:-}" ]] && seed=(-seed="$FUZZ_SEED")
here="$(cd "$(dirname "$0")" && pwd)"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"
if [[ -z "${ASAN_SYMBOLIZER_PATH:-}" ]] && command -v llvm-symbolizer >/dev/null; then
  export ASAN_SYMBOLIZER_PATH="$(command -v llvm-symbolizer)"
fi

# One libFuzzer process per target, FUZZ_JOBS (default: the cores) at a time: each is one
# thread, and the time per target is fixed, so running them side by side divides the wall time.
jobs="${FUZZ_JOBS:-$(nproc)}"
run_target() {
  local target="$1" binary="$build/fuzz/$1" dict=()
  case "$target" in
    api_request_fuzzer) dict=(-dict="$here/http.dict") ;;
    settings_fuzzer) ;;
    *) dict=(-dict="$here/json.dict") ;;
  esac
  "$binary" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
    -print_final_stats=1 -artifact_prefix="$build/crashes/$target/" "${dict[@]}" "${seed[@]}" \
    "$build/corpus/$target" "$here/corpus/$target" >"$build/crashes/$target/last-run.log" 2>&1
  echo $? >"$build/crashes/$target/last-run.code"
}

targets=()
for source in "$here"/*_fuzzer.cpp; do
  target="$(basename "$source" .cpp)"
  [[ -x "$build/fuzz/$target" ]] ||
    { echo "missing $build/fuzz/$target: build the fuzz_targets target first" >&2; exit 2; }
  mkdir -p "$build/corpus/$target" "$build/crashes/$target"
  rm -f "$build/crashes/$target/last-run.code"
  targets+=("$target")
done
echo "fuzz: ${#targets[@]} targets, ${seconds} s each, $jobs at a time"
for target in "${targets[@]}"; do
  while [[ $(jobs -rp | wc -l) -ge $jobs ]]; do wait -n; done
  run_target "$target" &
done
wait

failed=()
for target in "${targets[@]}"; do
  log="$build/crashes/$target/last-run.log"
  code="$(cat "$build/crashes/$target/last-run.code" 2>/dev/null || echo 1)"
  echo "=== $target: $(grep -E '^stat::number_of_executed_units|^stat::new_units_added|^#[0-9]+.*DONE' "$log" | tr '\n' ' ')"
  if [[ $code -ne 0 ]]; then
    failed+=("$target")
    echo "--- $target FAILED (exit $code); the end of $log:" >&2
    tail -40 "$log" >&2
  fi
done

if [[ ${#failed[@]} -gt 0 ]]; then
  echo "fuzz: failures in ${failed[*]}; inputs in $build/crashes/<target>/" >&2
  exit 1
fi
echo "fuzz: every target ran ${seconds} s without a failure"
