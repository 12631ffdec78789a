"""Operating a node (PROTOCOL.md §10): SIGTERM drains, SIGHUP reloads the apps.

Real processes, real signals, `websockets` clients and Tencent's `TLSSigAPIv2` UserSigs."""

from __future__ import annotations

import asyncio
import json
import signal
import time
import urllib.error
import urllib.request

from conftest import App
from sbclient import connect, logged_in, usersig


def http_status(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_sigterm_drains_spread_then_exits_before_drain_timeout(start_server):
    server = start_server(drainTimeout=3)
    assert http_status(server.admin_port, "/readyz") == 200

    async def main():
        clients = [(await logged_in(server, f"user{i}"))[0] for i in range(6)]
        started = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        server.terminated = True
        afters = []
        for client in clients:
            frame = await client.next_frame()
            assert frame["op"] == "event" and frame["event"] == "reconnect" and "seq" not in frame, frame
            assert isinstance(frame["data"]["after"], int), frame
            afters.append(frame["data"]["after"])
        # Spread over most of drainTimeout, not all at once; never past it, and never next to
        # nothing: the window is 80 % of (3 s - 1 s) = 1600 ms, `after` its last three quarters.
        assert all(400 <= a <= 1600 for a in afters), afters
        # Not ready while draining; new WebSocket connections are refused.
        assert http_status(server.admin_port, "/readyz") == 503
        try:
            late = await connect(server, open_timeout=1)
        except OSError:
            pass
        else:
            raise AssertionError(f"a new connection was accepted while draining: {late}")
        for client in clients:
            await client.expect_close(1001, timeout=4)
        return started

    started = asyncio.run(main())
    assert server.proc.wait(5) == 0
    assert time.monotonic() - started < 3.0, "exit after drainTimeout"


def config_path(tmp_path):
    [path] = [p for p in tmp_path.glob("server0-*.json")]
    return path


def test_sighup_reloads_keys_and_policies_without_dropping_a_connection(start_server, tmp_path):
    server = start_server(policy="dual")
    new = App(server.app.sdkappid, "a-rotated-secret-key-0000000000000000")

    async def before():
        client, _ = await logged_in(server, "alice", "iPhone")
        return client

    async def after(client):
        # The connection made before the reload is still there, still logged in.
        assert await client.call("getLoginStatus") == 1
        other = await connect(server)
        assert (await other.login("bob", "Web"))["code"] == 70009  # the old key is gone
        await other.login_ok("bob", "Web", sig=usersig(new.sdkappid, new.key, "bob"))
        # The new policy (single) applies to new logins: an iPhone login kicks bob's Web.
        third = await connect(server)
        await third.login_ok("bob", "iPhone", sig=usersig(new.sdkappid, new.key, "bob"))
        kicked = await other.next_frame()
        assert kicked["event"] == "kickedOffline", kicked
        await other.expect_close(4002)
        await client.close()
        await third.close()

    loop = asyncio.new_event_loop()
    try:
        client = loop.run_until_complete(before())
        path = config_path(tmp_path)
        config = json.loads(path.read_text())
        config["apps"][0]["secretKey"] = new.key
        config["apps"][0]["policy"] = "single"
        path.write_text(json.dumps(config))
        server.proc.send_signal(signal.SIGHUP)
        time.sleep(0.3)
        loop.run_until_complete(after(client))
    finally:
        loop.close()
    assert "apps reloaded" in server.stderr()


def test_sighup_with_a_broken_file_keeps_the_running_configuration(start_server, tmp_path):
    server = start_server()
    path = config_path(tmp_path)
    path.write_text("apps: [{sdkAppID: 1, secretKey: ''}]")  # refused: empty key
    server.proc.send_signal(signal.SIGHUP)
    time.sleep(0.3)

    async def main():
        client, _ = await logged_in(server, "carol")  # the old key still works
        await client.close()

    asyncio.run(main())
    assert server.proc.poll() is None
    assert "configuration refused" in server.stderr()


def test_logs_are_structured_and_hold_no_secrets(start_server):
    """A busy session (logins, a bad UserSig, a kick, a drain) at the default log level: the log
    never shows a secret key, a UserSig or a resume token."""
    server = start_server()
    seen = []

    async def main():
        a, session = await logged_in(server, "alice", "iPhone")
        sig = usersig(server.app.sdkappid, server.app.key, "alice")
        seen.extend([sig, session["resumeToken"]])
        b = await connect(server)
        assert (await b.login("alice", "Android", sig=sig))["code"] == 0
        await a.expect_close(4002)
        c = await connect(server)
        assert (await c.login("bob", sig="not-a-sig"))["code"] == 70003
        await b.close()
        await c.close()

    asyncio.run(main())
    server.proc.send_signal(signal.SIGTERM)
    server.terminated = True
    assert server.proc.wait(5) == 0
    log = server.stderr()
    assert "listening" in log and "draining" in log, log
    for secret in [server.app.key, server.app2.key, *seen]:
        assert secret not in log
    # swift-log's structured lines: a timestamp, a level, the label, then key=value metadata.
    for line in log.strip().splitlines():
        assert " info " in line or " notice " in line or " warning " in line or " error " in line, line


def test_embedded_default_prints_a_key_and_a_working_usersig_command(tmp_path):
    """`switchboard serve` with no configuration (PROTOCOL.md §10): one demo app, sdkAppID
    1400000000, its key and a ready `usersig issue` line on standard output — and that line,
    run as printed, makes a UserSig that logs in."""
    import os
    import shlex
    import subprocess

    from conftest import BIN, free_port

    port, admin = free_port(), free_port()
    env = {**os.environ, "SWITCHBOARD_LISTEN": f"127.0.0.1:{port}", "SWITCHBOARD_ADMIN": f"127.0.0.1:{admin}"}
    proc = subprocess.Popen([str(BIN), "serve"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            env=env, cwd=tmp_path, text=True)
    try:
        lines = [proc.stdout.readline() for _ in range(5)]
        assert lines[0].startswith(f"Switchboard listening on ws://127.0.0.1:{port}/ws"), lines
        assert "sdkAppID 1400000000" in lines[1] and "policy dual" in lines[1], lines
        key = lines[2].split()[-1]
        assert len(key) == 64, lines
        command = shlex.split(lines[4])
        assert command[:3] == ["swift", "run", "switchboard"] and key in command, lines
        sig = subprocess.run([str(BIN), *command[3:]], capture_output=True, text=True, check=True).stdout.strip()

        async def main():
            from websockets.asyncio.client import connect as ws_connect

            async with ws_connect(f"ws://127.0.0.1:{port}/ws") as ws:
                await ws.send(json.dumps({"op": "login", "id": 1, "sdkAppID": 1400000000, "userID": "alice",
                                          "userSig": sig, "platform": "iPhone"}))
                reply = json.loads(await asyncio.wait_for(ws.recv(), 3))
                assert reply["code"] == 0 and reply["data"]["userID"] == "alice", reply

        asyncio.run(main())
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(5) == 0
