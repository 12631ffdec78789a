"""The admin port (PROTOCOL.md §9) of a real `switchboard serve`, driven as Tencent's REST API
is: query-parameter authentication with Tencent's `TLSSigAPIv2` UserSigs, HTTP from the
standard library (`urllib`), WebSocket clients from `websockets`, and a real HTTP receiver
(`http.server`) on loopback for the `State.StateChange` webhook.
"""

from __future__ import annotations

import asyncio
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import json
import random
import re
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from conftest import INTEROP_REDIS, APP, APP2, base_config
from sbclient import aio, connect, logged_in, usersig

KICK = "/v4/im_open_login_svc/kick"
QUERY = "/v4/openim/query_online_status"
PUSH = "/v4/switchboard/push"
STATS = "/v4/switchboard/stats"


# --- HTTP helpers --------------------------------------------------------------------------------

def fetch(server, path: str, body=None, method: str | None = None, query: dict | None = None):
    """One request to the admin port: (status, headers, body bytes)."""
    url = f"http://127.0.0.1:{server.admin_port}{path}"
    if query is not None:
        url += "?" + urllib.parse.urlencode(query)
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method or ("POST" if data is not None else "GET"),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def auth(app=APP, identifier: str = "administrator", sig: str | None = None, **extra) -> dict:
    """Tencent's REST authentication parameters."""
    query = {
        "sdkappid": app.sdkappid,
        "identifier": identifier,
        "usersig": usersig(app.sdkappid, app.key, identifier) if sig is None else sig,
        "random": random.randint(0, 4294967295),
        "contenttype": "json",
    }
    query.update(extra)
    return query


def call(server, path: str, body=None, *, code: int = 0, method: str | None = None, **auth_args) -> dict:
    """An authenticated REST call; checks HTTP 200, the reply's shape and its ErrorCode."""
    status, headers, raw = fetch(server, path, body if body is not None or method == "GET" else {}, method=method,
                                query=auth(**auth_args))
    assert status == 200, (status, raw)
    assert headers["Content-Type"].startswith("application/json"), headers
    reply = json.loads(raw)
    assert list(reply)[:3] == ["ActionStatus", "ErrorCode", "ErrorInfo"], reply
    assert reply["ErrorCode"] == code, reply
    assert reply["ActionStatus"] == ("OK" if code == 0 else "FAIL"), reply
    assert isinstance(reply["ErrorInfo"], str) and (code == 0 or reply["ErrorInfo"]), reply
    return reply


def metrics(server) -> str:
    status, headers, raw = fetch(server, "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4"), (status, headers)
    return raw.decode()


def sample(text: str, series: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line[len(series) + 1:])
    return None


async def until(predicate, timeout: float = 5.0, what: str = "condition"):
    """Polls a (blocking, quick) predicate, letting the event loop run in between: the
    connections a test aborted close only when it does."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout}s")
        await asyncio.sleep(0.02)


# --- A state-change receiver ---------------------------------------------------------------------

class Receiver:
    """An HTTP server on a loopback port, in a thread, recording each POST (path+query, JSON body)."""

    def __init__(self, answer: bool = True):
        received = self.received = []
        self.answer = answer
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                received.append((self.path, json.loads(body), self.headers.get("Content-Type")))
                if not outer.answer:
                    time.sleep(30)  # never answers within the gateway's timeout
                    return
                reply = b'{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":""}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/im/state"

    def events(self, user: str | None = None) -> list[dict]:
        return [body for _, body, _ in self.received if user is None or body["Info"]["To_Account"] == user]

    async def wait(self, count: int, timeout: float = 5.0) -> list:
        await until(lambda: len(self.received) >= count, timeout, f"{count} callbacks (have {len(self.received)})")
        return list(self.received)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def config_with_callback(url: str, **top) -> dict:
    config = base_config(**top)
    config["apps"][0]["stateCallbackURL"] = url
    return config


# --- Health, readiness, metrics, HTTP errors -----------------------------------------------------

def test_health_ready_metrics_and_http_errors(server):
    assert fetch(server, "/healthz")[0] == 200
    assert fetch(server, "/readyz")[0] == 200
    text = metrics(server)
    assert "# TYPE switchboard_logins_total counter" in text
    assert sample(text, "switchboard_connections") == 0
    assert fetch(server, "/nope")[0] == 404
    assert fetch(server, "/v4/openim/nope", {}, query=auth())[0] == 404
    status, headers, _ = fetch(server, KICK, method="GET", query=auth())
    assert status == 405 and headers["Allow"] == "POST"
    assert fetch(server, "/metrics", b"", method="POST")[0] == 405
    status, _, raw = fetch(server, PUSH, b"x" * ((1 << 20) + 1), query=auth())
    assert status == 413 and json.loads(raw)["ErrorCode"] == 70402
    assert fetch(server, "/healthz")[0] == 200


def test_readyz_is_503_while_draining(start_server):
    server = start_server(drainTimeout=3)

    async def main():
        client, _ = await logged_in(server, "alice", "Web")  # keeps the drain busy for a moment
        server.terminate()
        await until(lambda: fetch(server, "/readyz")[0] == 503, 2, "readyz 503 during the drain")
        assert fetch(server, "/healthz")[0] == 200
        await client.expect_gone(5)

    asyncio.run(main())


# --- Authentication ------------------------------------------------------------------------------

def test_bad_or_missing_admin_usersig_fails_cleanly(server):
    now = int(time.time())
    cases = [
        ({}, 70402),
        ({"sdkappid": "abc"}, 70402),
        ({"sdkappid": 1400000777}, 70020),
        ({"identifier": None}, 70402),
        ({"identifier": "alice", "usersig": usersig(APP.sdkappid, APP.key, "alice")}, 70402),
        ({"usersig": None}, 70002),
        ({"usersig": ""}, 70002),
        ({"usersig": "not-a-usersig"}, 70003),
        ({"usersig": usersig(APP2.sdkappid, APP2.key, "administrator")}, 70014),
        ({"usersig": usersig(APP.sdkappid, "wrong key", "administrator")}, 70009),
        ({"usersig": usersig(APP.sdkappid, APP.key, "alice")}, 70013),
        ({"usersig": usersig(APP.sdkappid, APP.key, "administrator", expire=10, at=now - 100)}, 70001),
        ({"contenttype": "xml"}, 70402),
    ]
    for override, code in cases:
        query = auth() if override else {}
        for key, value in override.items():
            if value is None:
                query.pop(key, None)
            else:
                query[key] = value
        status, _, raw = fetch(server, STATS, method="GET", query=query)
        assert status == 200, (override, status)
        reply = json.loads(raw)
        assert reply["ErrorCode"] == code and reply["ActionStatus"] == "FAIL" and reply["ErrorInfo"], (override, reply)
        assert "Node" not in reply
    reply = call(server, STATS, method="GET")
    assert reply["Node"]
    # The second app authenticates with its own key.
    call(server, STATS, method="GET", app=APP2)


# --- Kick and revocation -------------------------------------------------------------------------

@aio
async def test_kick_every_instance_then_old_usersigs_fail_70052_and_new_ones_work(server):
    old = usersig(APP.sdkappid, APP.key, "bob")
    phone, _ = await logged_in(server, "bob", "iPhone", sig=old)
    web, _ = await logged_in(server, "bob", "Web", sig=old)
    carol, _ = await logged_in(server, "carol", "Android")

    call(server, KICK, {"UserID": "bob"})
    kick_second = int(time.time())
    for client in (phone, web):
        frames = await client.expect_close(4002)
        assert frames == [{"op": "event", "seq": 1, "event": "kickedOffline", "data": {"reason": "admin"}}], frames
    assert await carol.is_open()

    again = await connect(server)
    assert (await again.login("bob", "iPhone", sig=old))["code"] == 70052
    assert (await again.login("bob", "iPhone", at=kick_second - 1))["code"] == 70052
    await again.login_ok("bob", "iPhone", at=kick_second + 1)
    renew = await again.request("renewSig", userSig=old)
    assert renew["code"] == 70052, renew

    call(server, KICK, {"UserID": "never-seen"}, code=70107)
    for body in ({}, {"UserID": 7}, {"UserID": None}, {"UserID": ["bob"]}, ["bob"], b"{", b""):
        call(server, KICK, body, code=70402)
    call(server, KICK, {"UserID": "carol"}, code=70009, sig=usersig(APP.sdkappid, "nope", "administrator"))
    assert await carol.is_open()
    await carol.close()
    await again.close()


# --- Online status -------------------------------------------------------------------------------

@aio
async def test_query_online_status_with_and_without_detail(start_server):
    server = start_server(policy="multi")
    phone, _ = await logged_in(server, "alice", "iPhone")
    mac, _ = await logged_in(server, "alice", "Mac")
    mac.abort()
    bob, _ = await logged_in(server, "bob", "Web")
    bob.abort()

    def detached():
        reply = call(server, QUERY, {"To_Account": ["alice", "bob"], "IsNeedDetail": 1})
        statuses = [d["Status"] for r in reply["QueryResult"] for d in r["Detail"]]
        return statuses.count("Disconnected") == 2

    await until(detached, 3, "both drops noticed")
    plain = call(server, QUERY, {"To_Account": ["alice", "bob", "nobody"]})
    assert plain["QueryResult"] == [
        {"To_Account": "alice", "Status": "Online"},
        {"To_Account": "bob", "Status": "Offline"},
        {"To_Account": "nobody", "Status": "Offline"},
    ]
    detailed = call(server, QUERY, {"To_Account": ["alice", "bob", "nobody"], "IsNeedDetail": 1})["QueryResult"]
    assert sorted((d["Platform"], d["Status"]) for d in detailed[0]["Detail"]) == [("Mac", "Disconnected"),
                                                                                   ("iPhone", "Online")]
    assert detailed[1] == {"To_Account": "bob", "Status": "Offline", "Detail": [{"Platform": "Web", "Status": "Disconnected"}]}
    assert detailed[2] == {"To_Account": "nobody", "Status": "Offline", "Detail": []}
    for body in ({}, {"To_Account": "alice"}, {"To_Account": []}, {"To_Account": [1]}, {"To_Account": ["a b"]},
                 {"To_Account": ["alice"], "IsNeedDetail": 3}, {"To_Account": [f"u{i}" for i in range(501)]}):
        call(server, QUERY, body, code=70402)
    assert len(call(server, QUERY, {"To_Account": [f"u{i}" for i in range(500)]})["QueryResult"]) == 500
    await phone.close()


# --- Push ----------------------------------------------------------------------------------------

@aio
async def test_push_sends_a_message_event_from_the_admin_to_every_instance(server):
    phone, _ = await logged_in(server, "alice", "iPhone")
    web, _ = await logged_in(server, "alice", "Web")
    payload = {"text": "maintenance at 02:00", "n": 1.5, "list": [1, None, True]}
    reply = call(server, PUSH, {"To_Account": ["alice", "nobody"], "Payload": payload})
    results = reply["Results"]
    assert [(r["To_Account"], r["Online"]) for r in results] == [("alice", 2), ("nobody", 0)]
    for client in (phone, web):
        frame = await client.next_frame()
        assert frame["op"] == "event" and frame["event"] == "message" and frame["seq"] == 1, frame
        data = frame["data"]
        assert set(data) == {"from", "to", "msgID", "payload", "time"}, data
        assert (data["from"], data["to"], data["msgID"], data["payload"]) == ("administrator", "alice",
                                                                              results[0]["MsgID"], payload)
        assert abs(data["time"] - time.time() * 1000) < 5000
    # A message from alice continues the same seq.
    await phone.call("send", to="alice", payload="hi")
    assert (await web.next_frame())["seq"] == 2
    for body in ({"To_Account": ["alice"]}, {"Payload": 1}, {"To_Account": [], "Payload": 1},
                 {"To_Account": ["alice"], "Payload": "x" * 70000}):
        call(server, PUSH, body, code=70402)
    await phone.close()
    await web.close()


# --- Stats, DAU, metrics -------------------------------------------------------------------------

@aio
async def test_stats_and_metrics_after_real_traffic(start_server):
    server = start_server(policy="dual", nodeID="node-a")
    idle = await connect(server)
    phone, _ = await logged_in(server, "alice", "iPhone")
    web, _ = await logged_in(server, "alice", "Web")
    android, _ = await logged_in(server, "alice", "Android")  # kicks the iPhone
    await phone.expect_close(4002)
    bob, _ = await logged_in(server, "bob", "Mac")
    bob.abort()
    bad = await connect(server)
    assert (await bad.login("carol", "Web", sig=usersig(APP.sdkappid, "nope", "carol")))["code"] == 70009
    again, _ = await logged_in(server, "alice", "Web")  # a second Web instance would be over the limit: kicks web
    await web.expect_close(4002)

    await until(lambda: call(server, STATS, method="GET")["Sessions"]["Detached"] == 1, 3, "bob detached")
    stats = call(server, STATS, method="GET")
    assert stats["Node"] == "node-a"
    assert stats["Connections"] == 4  # idle, android, bad, again
    assert stats["Sessions"] == {"Attached": 2, "Detached": 1}
    assert stats["UsersOnline"] == 1
    assert stats["DAU"] == 2  # alice (four logins) and bob; carol failed
    assert stats["ByPlatform"] == {"Android": 1, "iPhone": 0, "iPad": 0, "Windows": 0, "Mac": 0, "Linux": 0, "Web": 1}
    assert call(server, STATS, method="GET", app=APP2)["DAU"] == 0

    call(server, KICK, {"UserID": "alice"})
    await android.expect_close(4002)
    await again.expect_close(4002)
    text = metrics(server)
    app = APP.sdkappid
    assert sample(text, 'switchboard_logins_total{code="0"}') == 5
    assert sample(text, 'switchboard_logins_total{code="70009"}') == 1
    assert sample(text, "switchboard_login_duration_seconds_count") == 6
    assert sample(text, 'switchboard_kicks_total{reason="multiDevice"}') == 2
    assert sample(text, 'switchboard_kicks_total{reason="admin"}') == 2
    assert sample(text, f'switchboard_dau{{app="{app}"}}') == 2
    assert sample(text, f'switchboard_sessions{{app="{app}",state="attached"}}') == 0
    # A cluster node's gauges count what is attached to it; detached sessions live in Redis only
    # (docs/operations.md), and the stats call above counted them.
    assert sample(text, f'switchboard_sessions{{app="{app}",state="detached"}}') == (0 if INTEROP_REDIS else 1)
    assert sample(text, 'switchboard_resumes_total{result="success"}') == 0
    for name in ("alice", "bob", "carol"):
        assert name not in text, f"{name} appears in /metrics"
    labels = set(re.findall(r"([a-zA-Z_]+)=\"", text))
    assert labels <= {"app", "state", "code", "reason", "result", "endpoint", "le"}, labels
    await idle.close()
    await bad.close()


# --- The state-change webhook --------------------------------------------------------------------

@aio
async def test_state_change_webhook_to_a_real_receiver(start_server, receiver):
    server = start_server(**config_with_callback(receiver.url + "?sign=s1", heartbeat=1))
    before = int(time.time() * 1000)
    phone, _ = await logged_in(server, "alice", "iPhone")
    android, _ = await logged_in(server, "alice", "Android")  # kicks the iPhone
    await phone.expect_close(4002)
    await android.call("logout")
    await android.login_ok("alice", "Android")
    android.abort()
    await receiver.wait(5)
    events = receiver.events("alice")
    assert [(e["Info"]["Action"], e["Info"]["Reason"]) for e in events] == [
        ("Login", "Register"), ("Login", "Register"), ("Logout", "Unregister"), ("Login", "Register"),
        ("Disconnect", "LinkClose"),
    ]
    first = events[0]
    assert list(first) == ["CallbackCommand", "EventTime", "Info", "KickedDevice"]
    assert first["CallbackCommand"] == "State.StateChange"
    assert before <= first["EventTime"] <= time.time() * 1000
    assert first["KickedDevice"] == []
    assert events[1]["KickedDevice"] == [{"Platform": "iPhone"}]
    assert "KickedDevice" not in events[2] and "KickedDevice" not in events[4]
    path, _, content_type = receiver.received[0]
    assert content_type.startswith("application/json")
    parsed = urllib.parse.urlsplit(path)
    assert parsed.path == "/im/state"
    query = dict(urllib.parse.parse_qsl(parsed.query))
    assert query == {"sign": "s1", "SdkAppid": str(APP.sdkappid), "CallbackCommand": "State.StateChange",
                     "contenttype": "json", "OptPlatform": "iOS"}

    # A client that stops answering pings: Disconnect/TimeOut after two heartbeats.
    silent = await connect(server)
    await silent.login_ok("bob", "Web")
    silent.ws.protocol.recv_frame = lambda frame: None  # drops every frame, so pings go unanswered
    await receiver.wait(7, timeout=5)
    assert [(e["Info"]["Action"], e["Info"]["Reason"]) for e in receiver.events("bob")] == [
        ("Login", "Register"), ("Disconnect", "TimeOut")]
    silent.abort()

    # An admin kick is a Logout from the REST API.
    carol, _ = await logged_in(server, "carol", "Mac")
    call(server, KICK, {"UserID": "carol"})
    await carol.expect_close(4002)
    await receiver.wait(9)
    assert [(e["Info"]["Action"], e["Info"]["Reason"]) for e in receiver.events("carol")] == [
        ("Login", "Register"), ("Logout", "Unregister")]
    assert "OptPlatform=RESTAPI" in receiver.received[-1][0]
    await until(lambda: sample(metrics(server), 'switchboard_webhook_posts_total{result="ok"}') == 9, 3, "9 posts ok")


@aio
async def test_a_receiver_that_never_answers_never_slows_logins(start_server):
    silent = Receiver(answer=False)
    try:
        server = start_server(**config_with_callback(silent.url))
        clients = []
        started = time.monotonic()
        for i in range(40):
            t0 = time.monotonic()
            client, _ = await logged_in(server, f"user{i}", "Web")
            assert time.monotonic() - t0 < 0.5, f"login {i} was slowed"
            clients.append(client)
        assert time.monotonic() - started < 8
        assert fetch(server, "/healthz")[0] == 200
        assert call(server, STATS, method="GET")["Sessions"]["Attached"] == 40
        # The stuck POSTs time out (3 s each) and are counted; nothing crashes.
        await until(lambda: (sample(metrics(server), 'switchboard_webhook_posts_total{result="timeout"}') or 0) >= 1,
                 8, "a webhook timeout counted")
        assert server.alive()
        for client in clients:
            await client.close()
    finally:
        silent.close()


@aio
async def test_a_dead_receiver_is_counted_and_harmless(start_server):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/cb"  # nothing listens once closed
    server = start_server(**config_with_callback(dead))
    client, _ = await logged_in(server, "alice", "Web")
    await until(lambda: sample(metrics(server), 'switchboard_webhook_posts_total{result="failed"}') == 1, 3,
             "the refused POST counted")
    assert await client.is_open()
    await client.close()
