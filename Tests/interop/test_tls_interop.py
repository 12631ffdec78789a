"""wss:// (PROTOCOL.md §1): with `tlsCertificate` and `tlsKey` the WebSocket port speaks TLS.

A self-signed certificate is made with the openssl command line; the client is Python's
`websockets` over the standard library's `ssl`, trusting exactly that certificate."""

from __future__ import annotations

import asyncio
import json
import ssl
import subprocess

import pytest
from websockets.asyncio.client import connect as ws_connect

from sbclient import usersig


@pytest.fixture
def certificate(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


def test_wss_login_and_kick(start_server, certificate):
    cert, key = certificate
    server = start_server(policy="single", tlsCertificate=str(cert), tlsKey=str(key))
    context = ssl.create_default_context(cafile=str(cert))
    url = f"wss://127.0.0.1:{server.port}/ws"

    async def login(ws, platform, id_):
        sig = usersig(server.app.sdkappid, server.app.key, "alice")
        await ws.send(json.dumps({"op": "login", "id": id_, "sdkAppID": server.app.sdkappid,
                                  "userID": "alice", "userSig": sig, "platform": platform}))
        return json.loads(await asyncio.wait_for(ws.recv(), 3))

    async def main():
        async with ws_connect(url, ssl=context) as first, ws_connect(url, ssl=context) as second:
            assert (await login(first, "iPhone", 1))["code"] == 0
            assert (await login(second, "Web", 2))["code"] == 0
            kicked = json.loads(await asyncio.wait_for(first.recv(), 3))
            assert kicked["event"] == "kickedOffline" and kicked["data"]["byPlatform"] == "Web"
            await asyncio.wait_for(first.wait_closed(), 3)
            assert first.close_code == 4002

    asyncio.run(main())


def test_plain_ws_to_a_tls_port_fails_cleanly(start_server, certificate):
    cert, key = certificate
    server = start_server(tlsCertificate=str(cert), tlsKey=str(key))

    async def main():
        with pytest.raises(Exception):
            async with ws_connect(f"ws://127.0.0.1:{server.port}/ws", open_timeout=3):
                pass

    asyncio.run(main())
    # The server is unharmed: a TLS client still gets in.
    context = ssl.create_default_context(cafile=str(cert))

    async def again():
        async with ws_connect(f"wss://127.0.0.1:{server.port}/ws", ssl=context) as ws:
            await ws.send('{"op":"getLoginStatus","id":1}')
            assert json.loads(await asyncio.wait_for(ws.recv(), 3))["data"] == 3

    asyncio.run(again())
