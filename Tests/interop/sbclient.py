"""Client-side helpers for the gateway interop tests (PROTOCOL.md §1–§8).

Every connection is a real `websockets` asyncio client; every UserSig comes from Tencent's
`TLSSigAPIv2` library. Nothing here frames WebSocket bytes by hand: where a test needs several
frames in one TCP write, `websockets`' own sans-I/O protocol object builds them.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import json
import time
import types
from unittest import mock

import TLSSigAPIv2
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed
from websockets.frames import Opcode

# Seconds to wait for an answer the server should give at once.
TIMEOUT = 3.0


def aio(fn=None, *, seconds: float = 30):
    """Runs an async test with plain asyncio.run, bounded so one hang cannot stall the suite.
    `@aio`, or `@aio(seconds=60)` for a longer bound."""
    if fn is None:
        return functools.partial(aio, seconds=seconds)

    @functools.wraps(fn)
    def run(*args, **kwargs):
        return asyncio.run(asyncio.wait_for(fn(*args, **kwargs), seconds))

    return run

PLATFORMS = ["Android", "iPhone", "iPad", "Windows", "Mac", "Linux", "Web"]


# --- UserSigs, always from Tencent's library ---------------------------------------------------

def usersig(sdkappid: int, key: str, user: str, expire: int = 86400, at: int | None = None,
            userbuf: bytes | None = None) -> str:
    """A TLSSigAPIv2 UserSig from Tencent's library; `at` fixes TLS.time (unix seconds)."""
    api = TLSSigAPIv2.TLSSigAPIv2(sdkappid, key)
    fake = types.SimpleNamespace(time=(lambda: at + 0.25) if at is not None else time.time)
    # The library reads `time.time()` through its module's `time` global: swap that global only.
    with mock.patch.object(TLSSigAPIv2, "time", fake):
        if userbuf is None:
            return api.gen_sig(user, expire)
        return api.gen_sig_with_userbuf(user, expire, userbuf)


def now_ms() -> int:
    return int(time.time() * 1000)


# --- Frame shape checks ------------------------------------------------------------------------

def assert_error_reply(frame: dict, id_, code: int) -> None:
    """`{"op":"reply","id":ID,"code":C,"desc":"<non-empty English>"}`, nothing else."""
    assert frame.get("op") == "reply" and frame.get("id") == id_ and frame.get("code") == code, frame
    assert set(frame) == {"op", "id", "code", "desc"}, frame
    assert isinstance(frame["desc"], str) and frame["desc"], frame


def assert_ok_reply(frame: dict, id_) -> object:
    """A success reply (`desc` absent or empty); returns `data` (None when absent)."""
    assert frame.get("op") == "reply" and frame.get("id") == id_ and frame.get("code") == 0, frame
    assert set(frame) <= {"op", "id", "code", "desc", "data"}, frame
    assert frame.get("desc", "") == "", frame
    return frame.get("data")


def assert_error_event(frame: dict, code: int = 6017) -> None:
    """`{"op":"event","event":"error","data":{"code":C,"desc":"..."}}`: a connection event, no seq."""
    assert set(frame) == {"op", "event", "data"}, frame
    assert frame["op"] == "event" and frame["event"] == "error", frame
    assert set(frame["data"]) == {"code", "desc"}, frame
    assert frame["data"]["code"] == code and isinstance(frame["data"]["desc"], str) and frame["data"]["desc"], frame


def kicked_frame(seq: int, by: str, reason: str = "multiDevice") -> dict:
    return {"op": "event", "seq": seq, "event": "kickedOffline", "data": {"reason": reason, "byPlatform": by}}


# --- The client --------------------------------------------------------------------------------

class Client:
    """One WebSocket connection speaking the Switchboard protocol."""

    def __init__(self, ws, server):
        self.ws = ws
        self.server = server
        self.inbox: collections.deque[dict] = collections.deque()  # frames read while awaiting a reply
        self._next_id = 0
        self.pings: list[tuple[float, bytes]] = []  # WebSocket pings from the server (monotonic, payload)
        original = ws.protocol.recv_frame

        def recv_frame(frame):
            if frame.opcode is Opcode.PING:
                self.pings.append((time.monotonic(), bytes(frame.data)))
            return original(frame)

        ws.protocol.recv_frame = recv_frame

    @classmethod
    async def open(cls, server, **kwargs) -> "Client":
        options = dict(ping_interval=None, open_timeout=5, close_timeout=2, max_size=1 << 22)
        options.update(kwargs)
        ws = await ws_connect(server.url, **options)
        return cls(ws, server)

    # Sending

    def new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    async def send(self, obj) -> None:
        await self.ws.send(json.dumps(obj, separators=(",", ":")))

    def send_pipelined(self, frames: list[dict]) -> None:
        """Several text frames in one TCP write, so the server reads them together."""
        for obj in frames:
            self.ws.protocol.send_text(json.dumps(obj).encode())
        self.ws.transport.write(b"".join(self.ws.protocol.data_to_send()))

    def send_fragmented_in_one_write(self, fragments: list[str]) -> None:
        """One text message in several fragments (websockets' own framing), in one TCP write, so
        the server has read all of it before it reacts to any of it."""
        self.ws.protocol.send_text(fragments[0].encode(), fin=False)
        for fragment in fragments[1:]:
            self.ws.protocol.send_continuation(fragment.encode(), fin=False)
        self.ws.protocol.send_continuation(b"", fin=True)
        self.ws.transport.write(b"".join(self.ws.protocol.data_to_send()))

    async def request(self, op: str, *, id=None, timeout: float = TIMEOUT, **fields) -> dict:
        if id is None:
            id = self.new_id()
        await self.send({"op": op, "id": id, **fields})
        return await self.reply(id, timeout)

    async def call(self, op: str, **fields):
        """A request that must succeed: returns the reply's data."""
        id_ = self.new_id()
        return assert_ok_reply(await self.request(op, id=id_, **fields), id_)

    # Receiving

    async def _read(self, timeout: float) -> dict:
        raw = await asyncio.wait_for(self.ws.recv(), timeout)
        assert isinstance(raw, str), f"server sent a binary frame: {raw!r}"
        frame = json.loads(raw)
        assert isinstance(frame, dict), raw
        return frame

    async def reply(self, id_, timeout: float = TIMEOUT) -> dict:
        """The reply to `id_`; other frames read meanwhile wait in `inbox`."""
        deadline = time.monotonic() + timeout
        while True:
            frame = await self._read(max(0.01, deadline - time.monotonic()))
            if frame.get("op") == "reply" and frame.get("id") == id_:
                return frame
            self.inbox.append(frame)

    async def next_frame(self, timeout: float = TIMEOUT) -> dict:
        if self.inbox:
            return self.inbox.popleft()
        return await self._read(timeout)

    async def assert_silent(self, seconds: float = 0.3) -> None:
        """Nothing arrives for `seconds` (and nothing is waiting)."""
        assert not self.inbox, list(self.inbox)
        try:
            frame = await asyncio.wait_for(self.ws.recv(), seconds)
        except asyncio.TimeoutError:
            return
        raise AssertionError(f"unexpected frame: {frame!r}")

    async def expect_close(self, code: int, timeout: float = TIMEOUT) -> list[dict]:
        """Reads until the server closes with `code`; returns the frames read before the close."""
        frames = list(self.inbox)
        self.inbox.clear()
        deadline = time.monotonic() + timeout
        try:
            while True:
                frames.append(await self._read(max(0.01, deadline - time.monotonic())))
        except ConnectionClosed as closed:
            assert closed.rcvd is not None, f"closed without a close frame ({closed}); frames: {frames}"
            assert closed.rcvd.code == code, f"close {closed.rcvd.code} {closed.rcvd.reason!r}, expected {code}; frames: {frames}"
        except asyncio.TimeoutError:
            raise AssertionError(f"no close {code} within {timeout}s; frames: {frames}") from None
        return frames

    async def expect_gone(self, timeout: float = TIMEOUT) -> list[dict]:
        """Reads until the connection ends, with or without a close frame; returns the frames read."""
        frames = list(self.inbox)
        self.inbox.clear()
        deadline = time.monotonic() + timeout
        try:
            while True:
                frames.append(await self._read(max(0.01, deadline - time.monotonic())))
        except ConnectionClosed:
            return frames
        except asyncio.TimeoutError:
            raise AssertionError(f"connection still open after {timeout}s; frames: {frames}") from None

    async def is_open(self) -> bool:
        """The connection still answers a request."""
        try:
            data = await self.call("getLoginStatus")
        except ConnectionClosed:
            return False
        return data in (1, 2, 3)

    # Protocol operations

    async def login(self, user: str, platform: str = "Web", *, app=None, sig: str | None = None,
                    expire: int = 86400, at: int | None = None, **extra) -> dict:
        """Sends `login`; returns the whole reply frame (not checked)."""
        app = app or self.server.app
        if sig is None:
            sig = usersig(app.sdkappid, app.key, user, expire, at)
        return await self.request("login", sdkAppID=app.sdkappid, userID=user, userSig=sig, platform=platform, **extra)

    async def login_ok(self, user: str, platform: str = "Web", **kwargs) -> dict:
        """Logs in and checks success; returns the reply's data."""
        frame = await self.login(user, platform, **kwargs)
        data = assert_ok_reply(frame, frame["id"])
        assert data["userID"] == user and data["status"] == 1, frame
        return data

    async def resume(self, session: dict, last_seq: int = 0, **overrides) -> dict:
        fields = {"sessionID": session["sessionID"], "resumeToken": session["resumeToken"], "lastSeq": last_seq}
        fields.update(overrides)
        return await self.request("resume", **fields)

    def abort(self) -> None:
        """Drops the TCP connection without a close frame (a network loss)."""
        self.ws.transport.abort()

    async def close(self) -> None:
        try:
            await asyncio.wait_for(self.ws.close(), 3)
        except Exception:
            self.ws.transport.abort()


async def connect(server, **kwargs) -> Client:
    return await Client.open(server, **kwargs)


async def logged_in(server, user: str, platform: str = "Web", **kwargs) -> tuple[Client, dict]:
    client = await connect(server)
    return client, await client.login_ok(user, platform, **kwargs)


async def wait_until(predicate, timeout: float = 3.0, interval: float = 0.02):
    """Polls an async predicate until it returns a truthy value; returns that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


async def close_all(*clients: Client) -> None:
    await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
