"""Abuse limits (PROTOCOL.md §8: 9506, 70050 / close 4003; connections per address; slow
handshakes), each against a real `switchboard serve` with `websockets` clients."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest
from websockets.exceptions import InvalidStatus

from sbclient import Client, connect, logged_in


def test_failed_logins_per_address_then_70050_and_close_4003(start_server):
    server = start_server(maxFailedLogins=3)

    async def main():
        c = await connect(server)
        for i in range(3):
            reply = await c.login("alice", sig="garbage")
            assert reply["code"] == 70003, reply
        reply = await c.login("alice")  # a good UserSig, but the address is blocked for a minute
        assert reply["code"] == 70050, reply
        await c.expect_close(4003)
        other = await connect(server)  # another connection from the same address: still blocked
        assert (await other.login("bob"))["code"] == 70050
        await other.expect_close(4003)

    asyncio.run(main())


def test_requests_per_connection_per_second_9506(start_server):
    server = start_server(maxRequestsPerSecond=5)

    async def main():
        c = await connect(server)
        c.send_pipelined([{"op": "getLoginStatus", "id": i} for i in range(1, 9)])
        codes = {}
        for _ in range(8):
            frame = await c.next_frame()
            codes[frame["id"]] = frame["code"]
        assert [codes[i] for i in range(1, 6)] == [0] * 5, codes
        assert [codes[i] for i in range(6, 9)] == [9506] * 3, codes
        await asyncio.sleep(1.05)  # a new second: allowed again
        assert await c.call("getLoginStatus") == 3
        await c.close()

    asyncio.run(main())


def test_connections_per_address_429(start_server):
    server = start_server(maxConnectionsPerAddress=3)

    async def main():
        clients = [await connect(server) for _ in range(3)]
        with pytest.raises(InvalidStatus) as refused:
            await connect(server)
        assert refused.value.response.status_code == 429
        await clients[0].close()
        await asyncio.sleep(0.2)
        again = await connect(server)  # a place was given back
        assert await again.call("getLoginStatus") == 3
        for c in clients[1:] + [again]:
            await c.close()

    asyncio.run(main())


def test_slow_handshake_is_cut_off(start_server):
    server = start_server(handshakeTimeout=0.5)
    with socket.create_connection(("127.0.0.1", server.port)) as s:
        s.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\n")  # headers never finished
        s.settimeout(3)
        started = time.monotonic()
        assert s.recv(100) == b""  # closed by the server
        assert 0.3 < time.monotonic() - started < 2.5

    async def main():  # the server is fine
        c, _ = await logged_in(server, "alice")
        await c.close()

    asyncio.run(main())


async def connect_as(server, client_ip: str, version: int = 1):
    """A connection that starts with a PROXY protocol header naming `client_ip` (as HAProxy's
    `send-proxy` / `send-proxy-v2` does), then the WebSocket handshake."""
    sock = socket.create_connection(("127.0.0.1", server.port))
    if version == 1:
        sock.sendall(f"PROXY TCP4 {client_ip} 127.0.0.1 40000 {server.port}\r\n".encode())
    else:
        body = socket.inet_aton(client_ip) + socket.inet_aton("127.0.0.1") + (40000).to_bytes(2, "big") \
            + server.port.to_bytes(2, "big")
        sock.sendall(b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11]) + len(body).to_bytes(2, "big") + body)
    return await Client.open(server, sock=sock)


def test_proxy_protocol_limits_count_the_client_address(start_server):
    """With `proxyProtocol: true` the address in the PROXY header is the client's: failed logins
    and connections are counted per that address, not per the balancer's; a connection without
    a header is closed."""
    server = start_server(proxyProtocol=True, maxFailedLogins=2, maxConnectionsPerAddress=2)

    async def main():
        a = await connect_as(server, "203.0.113.7")
        for _ in range(2):
            assert (await a.login("alice", sig="garbage"))["code"] == 70003
        assert (await a.login("alice"))["code"] == 70050
        await a.expect_close(4003)
        # Another client behind the same balancer (same TCP peer) is not blocked.
        b = await connect_as(server, "203.0.113.8", version=2)
        await b.login_ok("bob")
        # Connections per address count the header's address too.
        c = await connect_as(server, "198.51.100.1")
        d = await connect_as(server, "198.51.100.1", version=2)
        with pytest.raises(InvalidStatus) as refused:
            await connect_as(server, "198.51.100.1")
        assert refused.value.response.status_code == 429
        for client in (b, c, d):
            await client.close()

    asyncio.run(main())
    with socket.create_connection(("127.0.0.1", server.port)) as s:  # no header: refused
        s.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n")
        s.settimeout(3)
        assert s.recv(100) == b""
