#!/usr/bin/env bash
# Type-checks the cargo-fuzz targets in engine/fuzz on the stable toolchain: no nightly, no cargo-fuzz.
#
#   bash scripts/check-fuzz.sh
#
# engine/fuzz is its own cargo project (excluded from the root workspace), so `cargo check --workspace`
# never sees it; this script keeps its targets compiling against the current pnet-mesh API. It also
# checks that every target has a checked-in corpus and a replay test in engine/tests/fuzz_corpus.rs.
# libfuzzer-sys compiles libFuzzer's C++ with the machine's g++ in its build script, even for `check`.
# A CARGO_TARGET_DIR set in the environment is used as is (cargo reads it); otherwise cargo uses
# engine/fuzz/target, which is git-ignored.
set -euo pipefail

cd "$(dirname "$0")/.."
fuzz_dir=engine/fuzz
manifest=$fuzz_dir/Cargo.toml

fail() {
    echo "check-fuzz: FAILED: $*" >&2
    exit 1
}

[ -f "$manifest" ] || fail "$manifest not found (run from a PNet Mesh checkout)"
command -v cargo >/dev/null 2>&1 || fail "cargo is not on PATH"

echo "check-fuzz: target dir: ${CARGO_TARGET_DIR:-$fuzz_dir/target (default)}"

# Every target needs a non-empty corpus and a replay test, or the stable test suite would miss it.
targets=()
for src in "$fuzz_dir"/fuzz_targets/*.rs; do
    [ -e "$src" ] || fail "no fuzz targets in $fuzz_dir/fuzz_targets"
    targets+=("$(basename "$src" .rs)")
done
for t in "${targets[@]}"; do
    grep -q "^name = \"$t\"" "$manifest" || fail "target $t has no [[bin]] entry in $manifest"
    corpus=$fuzz_dir/corpus/$t
    [ -d "$corpus" ] || fail "target $t has no corpus directory $corpus"
    n=$(find "$corpus" -maxdepth 1 -type f | wc -l)
    [ "$n" -gt 0 ] || fail "corpus $corpus is empty"
    grep -q "fuzzing::$t\b" engine/tests/fuzz_corpus.rs ||
        fail "target $t is not replayed by engine/tests/fuzz_corpus.rs"
    echo "check-fuzz: target $t: $n corpus inputs, replayed by engine/tests/fuzz_corpus.rs"
done

cmd=(cargo check --manifest-path "$manifest" --bins)
echo "check-fuzz: running: ${cmd[*]}"
if ! "${cmd[@]}"; then
    fail "the fuzz targets (${targets[*]}) do not compile; see the cargo output above"
fi
echo "check-fuzz: ok: ${#targets[@]} fuzz targets type-check (${targets[*]})"
