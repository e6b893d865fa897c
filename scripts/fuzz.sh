#!/usr/bin/env bash
# The cargo fuzz (libFuzzer) targets in fuzz/ (README "Fuzzing").
#
#   scripts/fuzz.sh smoke [TARGET...]   build, then a short reproducible run of each
#                                       target: seeds only, seed FUZZ_SMOKE_SEED (1),
#                                       FUZZ_SMOKE_RUNS (20000) executions, at most
#                                       FUZZ_SMOKE_SECONDS (30) s; nothing written to fuzz/corpus
#   scripts/fuzz.sh run [TARGET...]     FUZZ_RUNS executions of each (default
#                                       1 000000), FUZZ_SECONDS caps each run's time
#                                       (default: no cap); the corpus grows in
#                                       fuzz/corpus/TARGET, crashes in fuzz/artifacts/TARGET
#   scripts/fuzz.sh list                the targets
#   FUZZ_PREBUILT=1 scripts/fuzz.sh ...  run the binaries already built, as they are
#
# cargo-fuzz is installed idempotently, at the pinned version, into the
# git-ignored .tools/cargo and run from there. The toolchain is the
# machine's stable one with RUSTC_BOOTSTRAP=1 (cargo fuzz needs
# -Zsanitizer=address); a nightly is not needed. Every run prints one line
# per target: executions, libFuzzer's cov/ft, corpus size, seconds; the
# table is also written to fuzz/target/last-run.txt (FUZZ_REPORT).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CARGO_FUZZ_VERSION=0.13.2
TOOLS="$ROOT/.tools/cargo"
CARGO_FUZZ="$TOOLS/bin/cargo-fuzz"
FUZZ="$ROOT/fuzz"

export RUSTC_BOOTSTRAP=1

install_cargo_fuzz() {
  if "$CARGO_FUZZ" --version 2>/dev/null | grep -qx "cargo-fuzz $CARGO_FUZZ_VERSION"; then
    return
  fi
  echo "fuzz: installing cargo-fuzz $CARGO_FUZZ_VERSION into .tools/cargo" >&2
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked --root "$TOOLS" --quiet
}

targets() {
  if [ $# -gt 0 ]; then
    printf '%s\n' "$@"
  else
    (cd "$FUZZ" && "$CARGO_FUZZ" list)
  fi
}

# run_one TARGET MODE: one libFuzzer run; prints the summary line.
run_one() {
  local t=$1 mode=$2 corpus log start end
  log="$FUZZ/target/fuzz-logs/$t.log"
  mkdir -p "$(dirname "$log")"
  local args=(-timeout=10 -print_final_stats=1)
  if [ "$mode" = smoke ]; then
    corpus=$(mktemp -d)
    # Bounded and nearly repeatable: a fixed seed and number of executions
    # (two runs still differ a little: randomly seeded hash maps). Its job is
    # to replay fuzz/seeds (every finding is kept there) and catch a
    # regression cheaply; exploring is `make fuzz`'s job. The time cap only
    # guards a slow machine.
    args+=("-seed=${FUZZ_SMOKE_SEED:-1}" "-runs=${FUZZ_SMOKE_RUNS:-20000}"
      "-max_total_time=${FUZZ_SMOKE_SECONDS:-30}")
  else
    corpus="$FUZZ/corpus/$t"
    mkdir -p "$corpus"
    args+=("-runs=${FUZZ_RUNS:-1000000}")
    if [ -n "${FUZZ_SECONDS:-}" ]; then args+=("-max_total_time=$FUZZ_SECONDS"); fi
  fi
  local dirs=("$corpus")
  if [ -d "$FUZZ/seeds/$t" ]; then dirs+=("$FUZZ/seeds/$t"); fi
  start=$(date +%s)
  local status=0
  if [ -n "${FUZZ_PREBUILT:-}" ]; then
    # The binaries `build` made, as they are (no rebuild while sources change).
    mkdir -p "$FUZZ/artifacts/$t"
    (cd "$FUZZ" && nice -n 10 "target/x86_64-unknown-linux-gnu/release/$t" \
      "-artifact_prefix=$FUZZ/artifacts/$t/" "${args[@]}" "${dirs[@]}") >"$log" 2>&1 || status=$?
  else
    (cd "$FUZZ" && nice -n 10 "$CARGO_FUZZ" run -a "$t" "${dirs[@]}" -- "${args[@]}") >"$log" 2>&1 || status=$?
  fi
  end=$(date +%s)
  local execs stats cov ft corp
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
  stats=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -n1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$stats")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$stats")
  corp=$(sed -n 's/.* corp: \([0-9]*\/[0-9]*[a-zA-Z]*\).*/\1/p' <<<"$stats")
  if [ "$mode" = smoke ]; then rm -rf "$corpus"; fi
  printf '%-24s %10s execs  cov %6s  ft %7s  corpus %-12s %5ss  %s\n' \
    "$t" "${execs:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$((end - start))" \
    "$([ $status -eq 0 ] && echo ok || echo "FAILED (exit $status, log $log)")"
  if [ $status -ne 0 ]; then
    grep -E 'panicked|ERROR: |SUMMARY|Test unit written' "$log" | head -n 20 >&2 || true
    return 1
  fi
}

main() {
  local mode=${1:-smoke}
  shift || true
  case "$mode" in
    list) install_cargo_fuzz; targets; return ;;
    smoke|run) ;;
    *) echo "usage: $0 smoke|run|list [TARGET...]" >&2; exit 2 ;;
  esac
  install_cargo_fuzz
  local started failed=0
  started=$(date +%s)
  if [ -z "${FUZZ_PREBUILT:-}" ]; then
    (cd "$FUZZ" && nice -n 10 "$CARGO_FUZZ" build -a)
  fi
  local out="${FUZZ_REPORT:-$FUZZ/target/last-run.txt}"
  mkdir -p "$FUZZ/target"
  : >"$out"
  for t in $(targets "$@"); do
    run_one "$t" "$mode" | tee -a "$out" || failed=1
  done
  echo "fuzz $mode: $(( $(date +%s) - started )) s in all (build included)" | tee -a "$out"
  return $failed
}

main "$@"
