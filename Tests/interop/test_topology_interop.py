"""The deployment's topology (deploy/compose.yaml) on loopback: `scripts/cluster-loopback.sh` runs
Redis, three nodes and HAProxy configured from deploy/haproxy.cfg; clients go through HAProxy.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request

import pytest

from conftest import BIN, REPO_ROOT, free_port
from sbclient import Client, assert_ok_reply, close_all, usersig

SCRIPT = REPO_ROOT / "scripts" / "cluster-loopback.sh"
# deploy/switchboard.yaml's app: the topology runs the file operators copy.
SDKAPPID = 1400000000
KEY = "change-me-this-is-not-a-secret-key"


class Target:
    def __init__(self, port: int):
        self.url = f"ws://127.0.0.1:{port}/ws"


def status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def bound_socket(source: str, port: int) -> socket.socket:
    """A TCP connection to 127.0.0.1:port from the loopback address `source`."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    return sock


def stats_csv(port: int) -> dict[str, str]:
    """HAProxy's view of each server: name -> status (UP, DOWN, ...)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/;csv", timeout=5) as response:
        lines = response.read().decode().splitlines()
    header = lines[0].lstrip("# ").split(",")
    out = {}
    for line in lines[1:]:
        row = dict(zip(header, line.split(",")))
        if row.get("pxname") == "switchboard" and row.get("svname", "").startswith("node-"):
            out[row["svname"]] = row["status"]
    return out


@pytest.fixture
def topology(tmp_path):
    assert shutil.which("haproxy"), "haproxy is not installed (.ci/run installs it)"
    assert shutil.which("redis-server"), "redis-server is not installed (.ci/run installs it)"
    if not BIN.exists():
        pytest.skip(f"{BIN} not built")
    ports = {
        "CLUSTER_REDIS_PORT": free_port(),
        "CLUSTER_NODE_PORTS": " ".join(str(free_port()) for _ in range(3)),
        "CLUSTER_ADMIN_PORTS": " ".join(str(free_port()) for _ in range(3)),
        "CLUSTER_HAPROXY_PORT": free_port(),
        "CLUSTER_STATS_PORT": free_port(),
    }
    env = {**os.environ, **{k: str(v) for k, v in ports.items()}, "SWITCHBOARD_BIN": str(BIN),
           "CLUSTER_DIR": str(tmp_path / "cluster"), "CLUSTER_NODE_TTL": "2", "CLUSTER_TIMEOUT": "30",
           "SWITCHBOARD_DRAIN_TIMEOUT": "2"}
    up = subprocess.run([str(SCRIPT), "up"], env=env, capture_output=True, text=True, timeout=60)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        yield env, ports, tmp_path / "cluster"
    finally:
        down = subprocess.run([str(SCRIPT), "down"], env=env, capture_output=True, text=True, timeout=90)
        assert down.returncode == 0, down.stdout + down.stderr
        left = subprocess.run(["pgrep", "-f", str(tmp_path / "cluster")], capture_output=True, text=True)
        assert left.stdout.strip() == "", f"left running: {left.stdout}"


def test_haproxy_fronts_the_cluster_and_takes_a_draining_node_out(topology):
    env, ports, directory = topology
    admin_ports = [int(p) for p in ports["CLUSTER_ADMIN_PORTS"].split()]
    assert [status(f"http://127.0.0.1:{p}/readyz") for p in admin_ports] == [200, 200, 200]
    assert stats_csv(ports["CLUSTER_STATS_PORT"]) == {"node-1": "UP", "node-2": "UP", "node-3": "UP"}
    front = Target(ports["CLUSTER_HAPROXY_PORT"])

    async def scenario():
        # Six users through HAProxy: leastconn spreads them over the three nodes, and a kick
        # crosses nodes: a second Web login of each user kicks the first wherever it is.
        firsts = [await Client.open(front) for _ in range(6)]
        for i, client in enumerate(firsts):
            reply = await client.request("login", sdkAppID=SDKAPPID, userID=f"t{i}",
                                         userSig=usersig(SDKAPPID, KEY, f"t{i}"), platform="Web")
            assert_ok_reply(reply, reply["id"])
        per_node = []
        for p in admin_ports:
            with urllib.request.urlopen(f"http://127.0.0.1:{p}/metrics", timeout=5) as response:
                text = response.read().decode()
            per_node.append(int(float(next(line.split()[-1] for line in text.splitlines()
                                              if line.startswith("switchboard_connections ")))))
        assert sum(per_node) == 6 and all(n >= 1 for n in per_node), per_node
        seconds = [await Client.open(front) for _ in range(6)]
        for i, client in enumerate(seconds):
            reply = await client.request("login", sdkAppID=SDKAPPID, userID=f"t{i}",
                                         userSig=usersig(SDKAPPID, KEY, f"t{i}"), platform="Web")
            assert_ok_reply(reply, reply["id"])
        for client in firsts:
            frames = await client.expect_close(4002)
            assert frames[-1]["event"] == "kickedOffline", frames
        await close_all(*seconds)

    asyncio.run(asyncio.wait_for(scenario(), 30))

    async def client_addresses():
        # HAProxy names each client in a PROXY v2 header: 20 failed logins from 127.0.0.2 block
        # 127.0.0.2 on that node (70050), and clients from 127.0.0.3 on every node are unaffected.
        # (Seen from the nodes without the header, every client would be HAProxy's 127.0.0.1.)
        bad = await Client.open(front, sock=bound_socket("127.0.0.2", ports["CLUSTER_HAPROXY_PORT"]))
        for _ in range(20):
            reply = await bad.request("login", sdkAppID=SDKAPPID, userID="mallory", userSig="garbage", platform="Web")
            assert reply["code"] == 70003, reply
        reply = await bad.request("login", sdkAppID=SDKAPPID, userID="mallory",
                                  userSig=usersig(SDKAPPID, KEY, "mallory"), platform="Web")
        assert reply["code"] == 70050, reply
        others = [await Client.open(front, sock=bound_socket("127.0.0.3", ports["CLUSTER_HAPROXY_PORT"]))
                  for _ in range(6)]  # leastconn: two on each node
        for i, client in enumerate(others):
            reply = await client.request("login", sdkAppID=SDKAPPID, userID=f"ok{i}",
                                         userSig=usersig(SDKAPPID, KEY, f"ok{i}"), platform="Web")
            assert_ok_reply(reply, reply["id"])
        await close_all(bad, *others)

    asyncio.run(asyncio.wait_for(client_addresses(), 30))

    # SIGTERM node-2: it drains, /readyz says 503, HAProxy takes it out; new clients land elsewhere.
    pid = int((directory / "node-2.pid").read_text())
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while stats_csv(ports["CLUSTER_STATS_PORT"]).get("node-2") == "UP":
        assert time.monotonic() < deadline, "HAProxy still routes to a draining node"
        time.sleep(0.1)

    async def after():
        clients = [await Client.open(front) for _ in range(4)]
        for client in clients:
            assert await client.call("getLoginStatus") == 3
        await close_all(*clients)

    asyncio.run(asyncio.wait_for(after(), 20))
