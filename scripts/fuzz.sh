#!/usr/bin/env bash
# The fuzzing campaign: every cargo-fuzz target of engine/fuzz for N seconds each, new inputs that add
# coverage merged into the checked-in corpus (engine/fuzz/corpus/TARGET, replayed on stable by
# engine/tests/fuzz_corpus.rs), and per target the executions, the coverage and what was found.
#
#   scripts/fuzz.sh [--seconds N] [--target NAME]...      # default: 60 s each, every target
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`; this script installs it when missing) and runs
# on the stable toolchain with RUSTC_BOOTSTRAP=1. A crash or leak leaves its input under
# engine/fuzz/artifacts/TARGET/ and makes the script exit 1 after every target has run: fix it, copy
# the input into the corpus as a regression test, and run again. Builds go to engine/fuzz/target
# (or FUZZ_TARGET_DIR), apart from the workspace's, since the sanitizer flags differ.
set -euo pipefail

cd "$(dirname "$0")/.."
seconds=60
targets=()
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) seconds=$2; shift 2 ;;
        --target) targets+=("$2"); shift 2 ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) echo "fuzz: unknown argument $1" >&2; exit 2 ;;
    esac
done
case "$seconds" in ''|*[!0-9]*) echo "fuzz: --seconds $seconds: a whole number" >&2; exit 2 ;; esac

fuzz_dir=engine/fuzz
if [ ${#targets[@]} -eq 0 ]; then
    for src in "$fuzz_dir"/fuzz_targets/*.rs; do targets+=("$(basename "$src" .rs)"); done
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR=${FUZZ_TARGET_DIR:-$PWD/$fuzz_dir/target}
work_root=$CARGO_TARGET_DIR/campaign
summary=()
failed=0
cd "$fuzz_dir"
for t in "${targets[@]}"; do
    [ -f "fuzz_targets/$t.rs" ] || { echo "fuzz: no target $t" >&2; exit 2; }
    # The targets that build an endpoint pair per input run five times faster without comparison
    # tracing in the curve arithmetic (see Cargo.toml).
    flags=()
    case "$t" in handle_datagram|seal_open|cookie_consume|transport_decrypt) flags=(--no-trace-compares) ;; esac
    work=$work_root/$t
    rm -rf "$work" && mkdir -p "$work"
    before=$(find "corpus/$t" -maxdepth 1 -type f | wc -l)
    log=$work_root/$t.log
    echo "==> $t: $seconds s (corpus: $before inputs)"
    status=0
    cargo fuzz run "${flags[@]}" "$t" "$work" "corpus/$t" -- \
        -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1 || status=$?
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*')
    ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*')
    # Keep only what adds coverage to the checked-in corpus.
    cargo fuzz run "${flags[@]}" "$t" "corpus/$t" "$work" -- -merge=1 >>"$log" 2>&1 || true
    after=$(find "corpus/$t" -maxdepth 1 -type f | wc -l)
    crashes=$(find "artifacts/$t" -maxdepth 1 -type f 2>/dev/null | wc -l)
    if [ "$status" -ne 0 ] || [ "$crashes" -gt 0 ]; then
        failed=1
        echo "fuzz: $t FOUND SOMETHING (exit $status, $crashes artifacts in $fuzz_dir/artifacts/$t; log $log)"
        grep -E "ERROR|panicked|SUMMARY" "$log" | head -5 || true
    fi
    summary+=("$(printf '%-18s %8s s %12s execs %9s/s  cov %6s  ft %6s  corpus %4s -> %4s  artifacts %s' \
        "$t" "$seconds" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "$before" "$after" "$crashes")")
done
echo
echo "fuzz: summary"
printf '  %s\n' "${summary[@]}"
[ "$failed" -eq 0 ] || { echo "fuzz: inputs that crash are under $fuzz_dir/artifacts/" >&2; exit 1; }
