#!/usr/bin/env bash
# The TUN comparison: pnet-mesh-tun beside a stock wireguard-go in the same Docker topology, then one
# comparison JSON and a page with charts. Report-only: no speed is ever a pass or a fail.
#
#   scripts/bench-tun-comparison.sh [--output-dir DIR] [--baseline comparison.json]
#                                   [--ping-count N] [--iperf-duration DUR] [--profile P] [--smoke]
#                                   [--no-build]
#
# Writes under DIR (default artifacts/benchmarks/tun-comparison/): plan.json, preflight.json,
# pnet-mesh-tun.json, wireguard-go.json, comparison.json, comparison.html. Needs root, Docker (a
# daemon answering), /dev/net/tun, and the host's wireguard-go, wg, ip, ping, nc and iperf3, from
# which the images are built. --smoke: the `ci` profile build, --smoke runs (numbers not comparable).
# --no-build: use the binaries the profile already built (CI builds the workspace once).
set -euo pipefail

cd "$(dirname "$0")/.."
output_dir=artifacts/benchmarks/tun-comparison
baseline=""
ping_count=20
iperf_duration=10s
profile=release
smoke=()
build=1
while [ $# -gt 0 ]; do
    case "$1" in
        --output-dir) output_dir=$2; shift 2 ;;
        --baseline) baseline=$2; shift 2 ;;
        --ping-count) ping_count=$2; shift 2 ;;
        --iperf-duration) iperf_duration=$2; shift 2 ;;
        --profile) profile=$2; shift 2 ;;
        --smoke) smoke=(--smoke); profile=ci; shift ;;
        --no-build) build=0; shift ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
        *) echo "bench-tun-comparison: unknown argument $1" >&2; exit 2 ;;
    esac
done
if [ -n "$baseline" ] && [ ! -f "$baseline" ]; then
    echo "bench-tun-comparison: --baseline $baseline: no such file" >&2
    exit 2
fi

if [ $build = 1 ]; then
    echo "==> build ($profile)"
    cargo build --profile "$profile" -p pnet-mesh-bench -p pnet-mesh-tun
fi
target_dir=${CARGO_TARGET_DIR:-$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')}
case "$profile" in
    dev) bin_dir=$target_dir/debug ;;
    *) bin_dir=$target_dir/$profile ;;
esac
bench=$bin_dir/bench
for b in "$bench" "$bin_dir/pnet-mesh-tun"; do
    [ -x "$b" ] || { echo "bench-tun-comparison: $b is missing (build it, or drop --no-build)" >&2; exit 1; }
done
export PNET_MESH_TUN_BIN=$bin_dir/pnet-mesh-tun

mkdir -p "$output_dir"
cleanup() { "$bench" --tun-topology teardown --output "$output_dir/teardown.json" >/dev/null || true; }
trap cleanup EXIT

echo "==> plan and preflight"
"$bench" --tun-topology plan --output "$output_dir/plan.json" >/dev/null
# A topology left by an interrupted run is ours to remove before the preflight looks.
"$bench" --tun-topology teardown >/dev/null
if ! "$bench" --tun-topology preflight --output "$output_dir/preflight.json" >/dev/null; then
    echo "bench-tun-comparison: preflight failed:" >&2
    python3 -c 'import json, sys
for c in json.load(open(sys.argv[1]))["checks"]:
    print(f"  {c[\"status\"]:5} {c[\"name\"]}: {c[\"reason\"]}")' "$output_dir/preflight.json" >&2
    exit 1
fi

status=0
for impl in pnet-mesh-tun wireguard-go; do
    echo "==> $impl"
    "$bench" --tun-benchmark "$impl" --ping-count "$ping_count" --iperf-duration "$iperf_duration" \
        "${smoke[@]}" --output "$output_dir/$impl.json" >/dev/null || status=1
done

echo "==> compare"
compare=(--tun-compare --pnet "$output_dir/pnet-mesh-tun.json" --wireguard "$output_dir/wireguard-go.json"
    --output "$output_dir/comparison.json" --page "$output_dir/comparison.html")
[ -n "$baseline" ] && compare+=(--baseline "$baseline")
"$bench" "${compare[@]}" >/dev/null
python3 - "$output_dir/comparison.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
n, r = c["normalized"], c["ratios"]
def fmt(v):
    return "n/a" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))
print(f"{'figure':22} {'pnet-mesh-tun':>14} {'wireguard-go':>14} {'ratio':>7}")
for k in ["tcp_gbps", "tcp_reverse_gbps", "udp_gbps", "udp_loss_pct", "udp_reverse_loss_pct",
          "ping_p50_ms", "ping6_p50_ms", "rss_mb", "cpu_seconds", "threads"]:
    print(f"{k:22} {fmt(n['pnet'].get(k)):>14} {fmt(n['wireguard'].get(k)):>14} {fmt(r.get(k)):>7}")
for side, fails in c["failures"].items():
    for f in fails:
        print(f"failed ({side}): {f}")
PY
echo "wrote $output_dir/comparison.json and $output_dir/comparison.html"
exit $status
