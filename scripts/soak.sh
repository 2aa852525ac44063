#!/usr/bin/env bash
# The soak (F15 of FAULT_PLAN.md): node A and node B (`pnet-mesh up`) in the fault lab's namespaces,
# A reaching B through the impairment proxy on the router (20 ms ± 5 ms delay, 0.5 % loss, 0.5 %
# duplication, 1 % reordering, both ways), a 50 Mbit/s stream of 1200-byte datagrams echoed back,
# for N minutes. Every 10 s it samples both nodes' RSS, open descriptors and handshakes, and the
# stream's throughput, longest silence between echoes and round-trip times.
#
#   scripts/soak.sh [--minutes N] [--output-dir DIR] [--profile P] [--no-build] [--check]
#                   [--rate-mbit R] [--size B] [--interval-seconds S] [--timer-scale F]
#
# Defaults: 30 minutes, artifacts/soak, the release profile. Writes DIR/soak.json and DIR/soak.html
# (the plots). Report-only: the figures are printed, never asserted. --check (the CI smoke) makes it
# exit 1 when a node's RSS grew more than 10 % or 2 MiB after the warm-up, its descriptors by more
# than 2, or a node exited or panicked. --no-build: use the binaries the profile already built.
# Needs root (namespaces, the router); one fault run at a time (the fault suite's machine-wide lock).
set -euo pipefail

cd "$(dirname "$0")/.."
profile=release
build=1
output_dir=artifacts/soak
pass=()
minutes=30
while [ $# -gt 0 ]; do
    case "$1" in
        --minutes) minutes=$2; shift 2 ;;
        --output-dir) output_dir=$2; shift 2 ;;
        --profile) profile=$2; shift 2 ;;
        --no-build) build=0; shift ;;
        --check) pass+=(--check); shift ;;
        --rate-mbit|--size|--interval-seconds|--timer-scale) pass+=("$1" "$2"); shift 2 ;;
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        *) echo "soak: unknown argument $1" >&2; exit 2 ;;
    esac
done

if [ $build = 1 ]; then
    echo "==> build ($profile)"
    cargo build --profile "$profile" --locked -p pnet-mesh --features cli --bin pnet-mesh
    cargo build --profile "$profile" --locked -p pnet-mesh-e2e --bin soak --bin fault-tool
fi
target_dir=${CARGO_TARGET_DIR:-$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')}
case "$profile" in
    dev) bin_dir=$target_dir/debug ;;
    *) bin_dir=$target_dir/$profile ;;
esac
for b in "$bin_dir/soak" "$bin_dir/fault-tool" "$bin_dir/pnet-mesh"; do
    [ -x "$b" ] || { echo "soak: $b is missing (build it, or drop --no-build)" >&2; exit 1; }
done
echo "==> soak: $minutes minutes ($profile build), report in $output_dir"
exec "$bin_dir/soak" --minutes "$minutes" --output-dir "$output_dir" "${pass[@]}"
