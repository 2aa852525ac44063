#!/usr/bin/env bash
# Two pnet-mesh nodes on this machine, as an ordinary user, with nothing but UDP on loopback:
# keys from `pnet-mesh genkey`, two wg-quick files, node b exposing a local UDP echo service on its
# mesh port 7000, node a forwarding a local port to it; datagrams sent to node a come back echoed
# through the mesh, then `pnet-mesh show` prints both nodes as `wg show` would.
#
#   bash scripts/demo.sh             # builds the command (dev profile) first
#   PNET_PROFILE=release bash scripts/demo.sh
#   PNET_MESH_BIN=/path/to/pnet-mesh bash scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# PNET_MESH_BIN: an already built command (CI passes the one its build stage made).
if [ -n "${PNET_MESH_BIN:-}" ]; then
    pnet="$PNET_MESH_BIN"
else
    profile="${PNET_PROFILE:-dev}"
    cargo build -q -p pnet-mesh --features cli --profile "$profile"
    target_dir=$(cargo metadata --format-version 1 --no-deps |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
    case "$profile" in dev) out=debug ;; *) out=$profile ;; esac
    pnet="$target_dir/$out/pnet-mesh"
fi

work=$(mktemp -d /tmp/pnet-demo.XXXXXX)
export PNET_MESH_RUN_DIR="$work/run"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

"$pnet" genkey > "$work/a.key"
"$pnet" genkey > "$work/b.key"
mesh_psk=$("$pnet" genpsk)
a_pub=$("$pnet" pubkey < "$work/a.key")
b_pub=$("$pnet" pubkey < "$work/b.key")

# A UDP echo service on loopback, standing in for any local service node b exposes.
python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0))
print(s.getsockname()[1], flush=True)
while True:
    data, peer = s.recvfrom(65535); s.sendto(b"echo: " + data, peer)
' > "$work/echo.port" &
pids+=($!)
while [ ! -s "$work/echo.port" ]; do sleep 0.05; done
echo_port=$(cat "$work/echo.port")

cat > "$work/b.conf" <<CONF
[Interface]
PrivateKey = $(cat "$work/b.key")
Address = 10.66.0.2/24
MeshPresharedKey = $mesh_psk

[Peer]
PublicKey = $a_pub
AllowedIPs = 10.66.0.1/32
CONF
"$pnet" up "$work/b.conf" --expose "7000=127.0.0.1:$echo_port" 2> "$work/b.log" &
pids+=($!)
until grep -q ' ready ' "$work/b.log"; do sleep 0.05; done
b_port=$("$pnet" show b --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["listening_port"])')

cat > "$work/a.conf" <<CONF
[Interface]
PrivateKey = $(cat "$work/a.key")
Address = 10.66.0.1/24
MeshPresharedKey = $mesh_psk

[Peer]
PublicKey = $b_pub
Endpoint = 127.0.0.1:$b_port
AllowedIPs = 10.66.0.2/32
PersistentKeepalive = 25
CONF
"$pnet" up "$work/a.conf" --forward 127.0.0.1:0=10.66.0.2:7000 2> "$work/a.log" &
pids+=($!)
until grep -q ' ready ' "$work/a.log"; do sleep 0.05; done
forward=$("$pnet" show a --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["forwards"][0]["rule"].split("=")[0])')

echo "node b (10.66.0.2) exposes mesh port 7000 -> UDP echo on 127.0.0.1:$echo_port"
echo "node a (10.66.0.1) forwards $forward -> 10.66.0.2:7000 through the mesh"
echo
python3 - "$forward" <<'PY'
import socket, sys
host, port = sys.argv[1].rsplit(":", 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(10)
for i in range(1, 4):
    message = f"hello {i} through the mesh".encode()
    s.sendto(message, (host, int(port)))
    reply, _ = s.recvfrom(65535)
    print(f"sent {message.decode()!r:32} got back {reply.decode()!r}")
PY
echo
echo "$ pnet-mesh show"
"$pnet" show
