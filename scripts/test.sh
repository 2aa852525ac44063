#!/usr/bin/env bash
# Runs every check and test of the workspace, installing what a fresh machine lacks.
#
#   bash scripts/test.sh
#
# Stages (each prints its elapsed time): packages, crates.io dry run, format, clippy, docs, build,
# tests, containers, faults, soak smoke, required tests, fuzz targets, smokes.
# Tests that need root, network namespaces or wireguard-go are real tests here; when a resource is
# missing they fail with a message naming it (they are never skipped).
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)

# One build cache outside the clone, reused by later runs (a fresh machine only makes it slower).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/pnet-mesh-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export RUST_BACKTRACE="${RUST_BACKTRACE:-1}"
PROFILE="${PNET_TEST_PROFILE:-ci}"
log_dir="${PNET_TEST_LOG_DIR:-$CARGO_TARGET_DIR/test-logs}"
mkdir -p "$log_dir"

# The Docker CLI this machine has (Debian's docker.io puts one in /usr/bin).
docker_cli() {
    if [ -x /usr/bin/docker ]; then /usr/bin/docker "$@"; else docker "$@"; fi
}
docker_up() {
    docker_cli version --format '{{.Server.Version}}' >/dev/null 2>&1
}

stage_start=0
stage() {
    stage_start=$(date +%s)
    echo
    echo "==> $1"
}
stage_done() {
    echo "<== $1 took $(($(date +%s) - stage_start)) s"
}

# --- packages --------------------------------------------------------------------------------------
stage "packages"
need=()
command -v wireguard-go >/dev/null 2>&1 || need+=(wireguard-go)
command -v wg >/dev/null 2>&1 || need+=(wireguard-tools)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v python3 >/dev/null 2>&1 || need+=(python3)
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
command -v ping >/dev/null 2>&1 || need+=(iputils-ping)
command -v iperf3 >/dev/null 2>&1 || need+=(iperf3)
command -v nc >/dev/null 2>&1 || need+=(netcat-openbsd)
command -v iptables >/dev/null 2>&1 || need+=(iptables)
command -v nft >/dev/null 2>&1 || need+=(nftables)
command -v conntrack >/dev/null 2>&1 || need+=(conntrack)
command -v faketime >/dev/null 2>&1 || need+=(faketime)
command -v tcpdump >/dev/null 2>&1 || need+=(tcpdump)
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing: ${need[*]}"
        apt-get update -qq
        # --no-install-recommends: wireguard-tools would otherwise pull a kernel image.
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
    else
        echo "missing ${need[*]} and not root (or no apt-get): the interop tests will fail naming them"
    fi
else
    echo "wireguard-go, wg, ip, python3, dockerd, ping, iperf3, nc, iptables, nft, conntrack, faketime and tcpdump present"
fi
# The container tests need a Docker daemon: start one when none answers (never a second one).
if command -v dockerd >/dev/null 2>&1 && ! docker_up; then
    if pgrep -x dockerd >/dev/null 2>&1; then
        echo "a dockerd runs but does not answer yet; waiting for it"
    else
        echo "starting dockerd (log: $log_dir/dockerd.log)"
        nohup dockerd >"$log_dir/dockerd.log" 2>&1 &
    fi
    for _ in $(seq 1 100); do
        docker_up && break
        sleep 0.2
    done
fi
if docker_up; then
    echo "docker: server $(docker_cli version --format '{{.Server.Version}}' 2>/dev/null)"
else
    echo "no Docker daemon answers: the container tests will fail naming it"
fi
stage_done "packages"

# --- crates.io publishing flow (dry run; needs only the package registry) ----------------------------
stage "crates.io dry run"
bash scripts/packages.sh --dry-run --no-verify
stage_done "crates.io dry run"

# --- static checks ---------------------------------------------------------------------------------
stage "format"
cargo fmt --all -- --check
stage_done "format"

stage "clippy"
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings
# The sans-I/O core must build without the runtime (STYLE.md §2).
cargo check -p pnet-mesh --no-default-features --locked
stage_done "clippy"

stage "docs"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --all-features --locked
stage_done "docs"

# --- build and test --------------------------------------------------------------------------------
stage "build ($PROFILE profile)"
cargo build --workspace --all-targets --all-features --profile "$PROFILE" --locked
stage_done "build"

stage "tests"
test_log="$log_dir/cargo-test.log"
# Test binaries run one after another; the namespace tests also serialize on a machine-wide lock.
cargo test --workspace --exclude pnet-mesh-e2e --all-features --profile "$PROFILE" --locked \
    --no-fail-fast 2>&1 | tee "$test_log"
status=${PIPESTATUS[0]}
if [ "$status" -ne 0 ]; then
    echo "tests failed (log: $test_log)"
    exit "$status"
fi
# The end-to-end crate's own unit tests (its suites run in the stages below).
cargo test -p pnet-mesh-e2e --all-features --profile "$PROFILE" --locked --lib --bins 2>&1 | tee -a "$test_log"
status=${PIPESTATUS[0]}
if [ "$status" -ne 0 ]; then
    echo "tests of pnet-mesh-e2e failed (log: $test_log)"
    exit "$status"
fi
stage_done "tests"

# --- containers (Docker; images built from this build's binaries, no registry) -------------------
stage "containers"
containers_log="$log_dir/cargo-test-containers.log"
: >"$containers_log"
# Bounded batches; each test makes and removes its own labeled lab. Selected by test target with
# the workspace's features, so nothing is built again.
for batch in containers mesh; do
    batch_start=$(date +%s)
    timeout 600 cargo test --workspace --all-features --profile "$PROFILE" --locked --no-fail-fast \
        --test "$batch" -- --test-threads 2 2>&1 | tee -a "$containers_log"
    status=${PIPESTATUS[0]}
    if [ "$status" -ne 0 ]; then
        echo "container batch '$batch' failed (log: $containers_log; dockerd: $log_dir/dockerd.log)"
        exit "$status"
    fi
    echo "container batch '$batch' took $(($(date +%s) - batch_start)) s"
done
left=$(docker_cli ps -aq --filter label=pnet-mesh.run | wc -l)
left_networks=$(docker_cli network ls -q --filter label=pnet-mesh.run | wc -l)
if [ "$left" -ne 0 ] || [ "$left_networks" -ne 0 ]; then
    echo "the container tests left $left containers and $left_networks networks labeled pnet-mesh.run"
    exit 1
fi
echo "no labeled container or network left behind"
cat "$containers_log" >>"$test_log"
stage_done "containers"

# --- faults (FAULT_PLAN.md in namespaces: node processes, a router carrying the fault) ------------
stage "faults"
faults_log="$log_dir/cargo-test-faults.log"
# One scenario at a time (they also hold a machine-wide lock); measured figures go to
# artifacts/faults/ in the log directory.
PNET_FAULTS_REPORTS="$log_dir/faults" timeout 900 cargo test --workspace --all-features \
    --profile "$PROFILE" --locked --no-fail-fast --test faults -- --test-threads 1 2>&1 | tee "$faults_log"
status=${PIPESTATUS[0]}
if [ "$status" -ne 0 ]; then
    echo "fault scenarios failed (log: $faults_log)"
    exit "$status"
fi
left_ns=$(ip netns list 2>/dev/null | grep -c "^f[0-9]*[0-9a-f][0-9a-f][arbx]\b" || true)
echo "fault scenarios done; namespaces of fault labs left: $left_ns"
cat "$faults_log" >>"$test_log"
stage_done "faults"

# --- the soak, as a 2-minute smoke (F15; the 30-minute run is scripts/soak.sh) ---------------------
stage "soak smoke (2 minutes)"
# Report-only figures; it fails only on RSS or descriptor growth past the stated bounds, or a node
# that exited or panicked. The timer scale makes a rekey every 12 s, so memory is watched across ten.
bash scripts/soak.sh --minutes 2 --timer-scale 0.1 --profile "$PROFILE" --no-build --check \
    --output-dir "$log_dir/soak" 2>&1 | tee "$log_dir/soak.log"
status=${PIPESTATUS[0]}
if [ "$status" -ne 0 ]; then
    echo "soak smoke failed (log: $log_dir/soak.log; report: $log_dir/soak/soak.json)"
    exit "$status"
fi
stage_done "soak smoke"

stage "required tests"
# The fixed test names must have run and passed, not been filtered out or renamed away.
missing=0
while read -r name; do
    [ -z "$name" ] && continue
    if ! grep -qE "^test (.*::)?${name} \.\.\. ok$" "$test_log"; then
        echo "required test did not pass: $name"
        missing=1
    fi
done < "$root/scripts/required-tests.txt"
if [ "$missing" -ne 0 ]; then
    exit 1
fi
echo "all $(grep -c . "$root/scripts/required-tests.txt") required tests ran and passed"
if grep -qE '^test .* \.\.\. ignored' "$test_log"; then
    echo "ignored tests found; every test must run:"
    grep -E '^test .* \.\.\. ignored' "$test_log"
    exit 1
fi
stage_done "required tests"

# --- fuzz targets ----------------------------------------------------------------------------------
if [ -f engine/fuzz/Cargo.toml ] && [ -f scripts/check-fuzz.sh ]; then
    stage "fuzz targets (type-check; the corpus replay ran with the tests)"
    bash scripts/check-fuzz.sh
    stage_done "fuzz targets"
fi

# --- smokes -----------------------------------------------------------------------------------------
# The bench binary was built with the workspace ($PROFILE profile, debug assertions on): --smoke lets
# it run to prove the scenarios work end to end. No timing is asserted; the numbers are not comparable.
stage "smokes (bench scenarios, one second each; the two-node demo)"
bench_bin="$CARGO_TARGET_DIR/$PROFILE/bench"
smoke_dir="$log_dir/bench-smoke"
mkdir -p "$smoke_dir"
"$bench_bin" --smoke --macro in-memory --payload 1420 --warmup 200ms --duration 1s \
    --output "$smoke_dir/in-memory.json" > /dev/null
"$bench_bin" --smoke --macro udp-loopback --payload 1420 --warmup 200ms --duration 1s --backend both \
    --output "$smoke_dir/udp-loopback.json" > /dev/null
python3 - "$smoke_dir/udp-loopback.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
runs = [r] + r["other_backends"]
for run in runs:
    for leg in ("ours", "ceiling", "bare_udp"):
        assert run[leg]["packets_received"] > 0, f"{run['backend']} {leg}: nothing received"
assert r["boringtun"]["packets_received"] > 0, "boringtun: nothing received"
print("udp-loopback smoke: " + ", ".join(
    f"{run['backend']} ours {run['packets_per_sec']:.0f}/s ceiling {run['ceiling']['packets_per_sec']:.0f}/s"
    for run in runs) + f", boringtun {r['boringtun']['packets_per_sec']:.0f}/s (smoke numbers, not comparable)")
PY
"$bench_bin" --smoke --macro channel-proxy --warmup 200ms --duration 1s \
    --output "$smoke_dir/channel-proxy.json" > /dev/null
python3 - "$smoke_dir/channel-proxy.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
for leg in r["legs"]:
    assert leg["messages"] > 0, f"{leg['what']}: no message delivered"
print("channel-proxy smoke: " + ", ".join(
    f"{leg['what']} {leg['goodput_bytes_per_sec'] / 2**20:.1f} MiB/s" for leg in r["legs"])
    + " (smoke numbers, not comparable)")
PY
"$bench_bin" --smoke --macro relay-loopback --payload 1420 --warmup 200ms --duration 1s \
    --output "$smoke_dir/relay-loopback.json" > /dev/null
python3 - "$smoke_dir/relay-loopback.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
assert r["ours"]["packets_received"] > 0, "relay-loopback: nothing crossed the relay"
assert r["direct"]["packets_received"] > 0, "relay-loopback: nothing crossed the direct pair"
assert r["relay_forwarded"] > 0, "relay-loopback: the relay forwarded nothing"
print(f"relay-loopback smoke: relayed {r['packets_per_sec']:.0f}/s, direct "
      f"{r['direct']['packets_per_sec']:.0f}/s, ratio {r['ratio_vs_direct']:.2f} (smoke numbers, not comparable)")
PY
"$bench_bin" --smoke --macro testnode-smoke --warmup 200ms --duration 1s \
    --output "$smoke_dir/testnode-smoke.json" > /dev/null
python3 - "$smoke_dir/testnode-smoke.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
assert r["round_trips"] > 0, "testnode-smoke: no round trip through the two containers"
print(f"testnode-smoke: {r['round_trips']} round trips through two node containers, {r['lost']} lost "
      "(manual and non-deterministic; smoke numbers)")
PY
# The README's first command: two `pnet-mesh` nodes on loopback, datagrams through --forward and
# --expose, then `show`. It fails unless every datagram comes back.
PNET_MESH_BIN="$CARGO_TARGET_DIR/$PROFILE/pnet-mesh" bash scripts/demo.sh
# The TUN workflow end to end: plan, preflight, one --tun-benchmark per side (2-second iperf3 steps),
# the comparison and its page, and cleanup. Report-only: the numbers are printed, never asserted.
scripts/bench-tun-comparison.sh --smoke --no-build --profile "$PROFILE" \
    --output-dir "$smoke_dir/tun-comparison" --ping-count 3 --iperf-duration 2s
python3 - "$smoke_dir/tun-comparison" <<'PY'
import json, os, sys
d = sys.argv[1]
c = json.load(open(os.path.join(d, "comparison.json")))
for side in ("pnet", "wireguard"):
    for key in ("tcp_gbps", "udp_loss_pct", "ping_p50_ms", "rss_mb", "cpu_seconds"):
        assert c["normalized"][side].get(key) is not None, f"tun comparison: normalized.{side}.{key} missing"
    assert c["raw"][side]["torn_down"], f"tun comparison: the {side} topology was not torn down"
assert os.path.getsize(os.path.join(d, "comparison.html")) > 1000, "tun comparison: no page"
print("tun workflow smoke: comparison and page written, both topologies torn down (smoke numbers)")
PY
if command -v docker >/dev/null 2>&1 && [ -n "$(docker ps -aq --filter label=pnet-mesh.run=pnet-tun-bench)" ]; then
    echo "the TUN workflow left labeled containers behind" >&2
    exit 1
fi
stage_done "smokes"

echo
echo "all checks passed"
