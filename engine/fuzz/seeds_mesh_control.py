#!/usr/bin/env python3
"""Writes seed inputs for the `mesh_control` fuzz target into corpus/mesh_control/: discovery
messages whose records carry valid MACs under pnet_mesh::fuzzing::MESH_CONTROL_PSK, so the fuzzer
starts inside the state machine instead of at the MAC check. Format: engine/src/mesh/wire.rs.

    python3 engine/fuzz/seeds_mesh_control.py
"""
import hashlib
import ipaddress
import os
import struct

PSK = bytes([0x42] * 32)
RECORD_KEY = hashlib.blake2s(b"pnet-mesh member record v1" + PSK).digest()


def record(key_byte, version, addresses, endpoints=(), left=False, observed=None, lifetime=60, hops=0):
    body = bytes([key_byte] * 32) + struct.pack(">QI", version, lifetime)
    body += bytes([1 if left else 0, len(addresses), len(endpoints), 0])
    for a in addresses:
        net = ipaddress.ip_network(a)
        body += bytes([net.version, net.prefixlen]) + net.network_address.packed
    for e in endpoints:
        host, port = e.rsplit(":", 1)
        ip = ipaddress.ip_address(host.strip("[]"))
        body += bytes([ip.version]) + ip.packed + struct.pack(">H", int(port))
    mac = hashlib.blake2s(body, key=RECORD_KEY, digest_size=16).digest()
    if observed is None:
        trailer = b"\x00"
    else:
        host, port = observed.rsplit(":", 1)
        ip = ipaddress.ip_address(host.strip("[]"))
        trailer = bytes([ip.version]) + ip.packed + struct.pack(">H", int(port))
    return body + mac + trailer + bytes([hops])


def message(records, sync=False):
    return bytes([1, 1, 1 if sync else 0, len(records)]) + b"".join(records)


WALL = 1_800_000_000_000_000
seeds = [
    message([record(2, WALL + 1, ["10.0.0.2/32"])], sync=True),
    message([record(9, WALL, ["10.0.0.9/32", "fd00::9/128"], ["192.0.2.9:51820"], observed="198.51.100.9:4000")]),
    message([record(9, WALL, ["10.0.0.2/32"])]),
    message([record(9, WALL, ["10.0.0.9/32"], hops=3)]),
    message([record(9, WALL + 5, [], left=True)]),
    message([record(10 + i, WALL, [f"10.1.{i}.0/24"], ["[2001:db8::1]:51820"]) for i in range(8)]),
]
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "mesh_control")
os.makedirs(out, exist_ok=True)
for s in seeds:
    with open(os.path.join(out, hashlib.sha1(s).hexdigest()), "wb") as f:
        f.write(s)
print(f"wrote {len(seeds)} seeds to {out}")
