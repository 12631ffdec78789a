"""Interop between `switchboard usersig` and Tencent's own Python library (PyPI `tls-sig-api-v2`).

Run:  SWITCHBOARD_BIN=.build/debug/switchboard pytest Tests/interop/test_usersig_interop.py
(SWITCHBOARD_BIN defaults to .build/debug/switchboard relative to the repository root.)
"""

import base64
import datetime
import json
import os
import pathlib
import subprocess
import zlib

import pytest
import TLSSigAPIv2

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(os.environ.get("SWITCHBOARD_BIN", ".build/debug/switchboard"))
if not BIN.is_absolute():
    BIN = REPO_ROOT / BIN

SDKAPPID = 1400000000
KEY = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e"
T0 = 1700000000

USERS = ["xiaojun", "user_42", "ünïcödé/用户", 'quote"back\\slash', "a" * 200]
USERBUFS = [None, b"", b"abc", bytes(range(256))]


def run(*args):
    return subprocess.run([str(BIN), "usersig", *args], capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module", autouse=True)
def binary():
    if not BIN.exists():
        pytest.skip(f"{BIN} not built (set SWITCHBOARD_BIN or run `swift build`)")
    out = run("--help")
    assert out.returncode == 0 and "verify" in out.stdout, (
        f"{BIN} has no working `usersig` subcommand:\n{out.stdout}{out.stderr}"
    )


def python_sig(monkeypatch, identifier, expire, userbuf=None, *, sdkappid=SDKAPPID, key=KEY, t=T0):
    monkeypatch.setattr(TLSSigAPIv2.time, "time", lambda: t + 0.5)
    api = TLSSigAPIv2.TLSSigAPIv2(sdkappid, key)
    if userbuf is None:
        return api.gen_sig(identifier, expire)
    return api.gen_sig_with_userbuf(identifier, expire, userbuf)


def verify(sig, *, user, now, sdkappid=SDKAPPID, key=KEY):
    # "--sig VALUE" (not "--sig=VALUE"): ArgumentParser treats "--sig=" as a missing value.
    return run("verify", f"--sdkappid={sdkappid}", f"--key={key}", f"--user={user}", "--sig", sig, f"--now={now}")


def iso(unix):
    return datetime.datetime.fromtimestamp(unix, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- Python-issued sigs verify with switchboard ---------------------------------------------------

@pytest.mark.parametrize("userbuf", USERBUFS, ids=lambda u: "none" if u is None else f"{len(u)}B")
@pytest.mark.parametrize("user", USERS)
def test_python_issued_sig_verifies(monkeypatch, user, userbuf):
    expire = 86400
    sig = python_sig(monkeypatch, user, expire, userbuf)
    out = verify(sig, user=user, now=T0 + expire)
    assert out.returncode == 0, out.stderr
    assert out.stdout == f"OK {user} expires {T0 + expire} ({iso(T0 + expire)})\n"
    assert out.stderr == ""


def test_python_issued_sig_expiry_boundary(monkeypatch):
    sig = python_sig(monkeypatch, "xiaojun", 60)
    assert verify(sig, user="xiaojun", now=T0 + 60).returncode == 0
    out = verify(sig, user="xiaojun", now=T0 + 61)
    assert out.returncode == 1
    assert out.stderr.startswith("FAIL 70001 ")


# --- switchboard-issued sigs verify with Python's algorithm ---------------------------------------

def python_check(sig, *, key=KEY, sdkappid=SDKAPPID):
    """Decode and verify the way TLSSigAPIv2.py would; returns the JSON object and the zlib bytes."""
    compressed = TLSSigAPIv2.base64_decode_url(sig.encode())
    obj = json.loads(zlib.decompress(compressed))
    api = TLSSigAPIv2.TLSSigAPIv2(sdkappid, key)
    expected = api._TLSSigAPIv2__hmacsha256(
        obj["TLS.identifier"], obj["TLS.time"], obj["TLS.expire"], obj.get("TLS.userbuf")
    )
    assert obj["TLS.sig"].encode() == expected
    return obj, compressed


@pytest.mark.parametrize("userbuf", [None, "room=1001&role=admin"], ids=["plain", "userbuf"])
@pytest.mark.parametrize("level", [0, 1, 6, 9])
@pytest.mark.parametrize("user", USERS[:4])
def test_switchboard_issued_sig_verifies_in_python(monkeypatch, user, level, userbuf):
    args = ["issue", f"--sdkappid={SDKAPPID}", f"--key={KEY}", f"--user={user}", "--expire=3600",
            f"--time={T0}", f"--level={level}"]
    if userbuf is not None:
        args.append(f"--userbuf={userbuf}")
    out = run(*args)
    assert out.returncode == 0, out.stderr
    sig = out.stdout.rstrip("\n")
    assert "\n" not in sig and sig.strip() == sig
    obj, compressed = python_check(sig)
    assert obj["TLS.ver"] == "2.0"
    assert obj["TLS.identifier"] == user
    assert obj["TLS.sdkappid"] == SDKAPPID
    assert obj["TLS.time"] == T0
    assert obj["TLS.expire"] == 3600
    if userbuf is None:
        assert "TLS.userbuf" not in obj
    else:
        assert base64.b64decode(obj["TLS.userbuf"]) == userbuf.encode()
    # Byte-for-byte what Python's json.dumps + zlib.compress produce at that level.
    assert compressed == zlib.compress(zlib.decompress(compressed), level)
    if level == 6:
        expected = python_sig(monkeypatch, user, 3600, None if userbuf is None else userbuf.encode())
        assert sig == expected


def test_switchboard_default_expire(monkeypatch):
    out = run("issue", f"--sdkappid={SDKAPPID}", f"--key={KEY}", "--user=xiaojun", f"--time={T0}")
    assert out.returncode == 0, out.stderr
    sig = out.stdout.strip()
    obj, _ = python_check(sig)
    assert obj["TLS.expire"] == 15552000
    assert sig == python_sig(monkeypatch, "xiaojun", 15552000)


# --- failures -------------------------------------------------------------------------------------

def test_wrong_key_fails_with_70009(monkeypatch):
    sig = python_sig(monkeypatch, "xiaojun", 86400)
    out = verify(sig, user="xiaojun", now=T0, key=KEY[:-1] + "0")
    assert out.returncode == 1
    assert out.stdout == ""
    assert out.stderr.startswith("FAIL 70009 ")


@pytest.mark.parametrize(
    "sig_user, verify_user, verify_app, now, code",
    [
        ("xiaojun", "someone", SDKAPPID + 1, T0 + 10**9, 70014),  # wrong app beats everything else
        ("xiaojun", "someone", SDKAPPID, T0 + 10**9, 70013),
        ("xiaojun", "xiaojun", SDKAPPID, T0 + 10**9, 70001),
    ],
)
def test_error_codes(monkeypatch, sig_user, verify_user, verify_app, now, code):
    sig = python_sig(monkeypatch, sig_user, 86400)
    out = verify(sig, user=verify_user, now=now, sdkappid=verify_app)
    assert out.returncode == 1
    assert out.stderr.startswith(f"FAIL {code} ")


@pytest.mark.parametrize("sig, code", [("not-a-sig", 70003), ("eJyrVgrxCdYrSy1SslJQMtIz", 70003), ("", 70002)])
def test_garbage(sig, code):
    out = verify(sig, user="xiaojun", now=T0)
    assert out.returncode == 1
    assert out.stderr.startswith(f"FAIL {code} ")
