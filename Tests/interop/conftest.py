"""Fixtures for the interop tests: real `switchboard serve` processes on free loopback ports.

The binary is $SWITCHBOARD_BIN (default .build/debug/switchboard under the repository root).
Each test that asks for `server` or `start_server` gets its own process (start-up takes ~30 ms),
configured through a file in the test's tmp dir; at teardown the process must still be running,
and after SIGTERM it must exit with status 0.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import signal
import socket
import subprocess
import time
import urllib.request

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(os.environ.get("SWITCHBOARD_BIN", ".build/debug/switchboard"))
if not BIN.is_absolute():
    BIN = REPO_ROOT / BIN

READY = "Switchboard listening on"


@dataclasses.dataclass(frozen=True)
class App:
    sdkappid: int
    key: str


APP = App(1400000001, "b9a1e0c1d3f24e5f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f")
APP2 = App(1400000002, "another-app-secret-key-0123456789")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclasses.dataclass
class Server:
    proc: subprocess.Popen
    port: int
    admin_port: int
    config: dict
    stdout_path: pathlib.Path
    stderr_path: pathlib.Path
    app: App = APP
    app2: App = APP2
    ready_at: float = 0.0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def _sigterm(self) -> None:
        self.proc.send_signal(signal.SIGTERM)

    def terminate(self) -> None:
        """SIGTERM from the test itself; teardown then only checks the exit status."""
        self.terminated = True
        self._sigterm()

    def stop(self) -> None:
        """SIGTERM; the process must have been running (unless the test sent SIGTERM itself) and
        must exit 0."""
        if getattr(self, "terminated", False):
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"server did not exit within 15 s of SIGTERM\n{self.stderr()[-4000:]}")
            assert self.proc.returncode == 0, f"exit status {self.proc.returncode} after SIGTERM\n{self.stderr()[-4000:]}"
            return
        crashed = self.proc.poll()
        if crashed is None:
            self._sigterm()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"server did not exit within 15 s of SIGTERM\n{self.stderr()[-4000:]}")
        assert crashed is None, f"server died during the test (status {crashed})\n{self.stderr()[-4000:]}"
        assert self.proc.returncode == 0, f"exit status {self.proc.returncode} after SIGTERM\n{self.stderr()[-4000:]}"


# SWITCHBOARD_INTEROP_REDIS=redis://127.0.0.1:PORT/DB runs every test's servers in cluster mode on
# that Redis (flushed before each test): the one-node suites then check the cluster's directory.
INTEROP_REDIS = os.environ.get("SWITCHBOARD_INTEROP_REDIS", "")


def flush_interop_redis() -> None:
    if INTEROP_REDIS:
        host_port = INTEROP_REDIS.split("//", 1)[1].split("/", 1)[0]
        host, port = host_port.rsplit(":", 1)
        subprocess.run(["redis-cli", "-h", host, "-p", port, "FLUSHALL"], check=True, capture_output=True)


def admin_ready(admin_port: int) -> bool:
    """/readyz answers 200 (in cluster mode a node takes logins only once its store answers)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/readyz", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


def base_config(policy: str = "dual", max_instances: dict | None = None, **top) -> dict:
    app = {"sdkAppID": APP.sdkappid, "secretKey": APP.key, "adminUser": "administrator", "policy": policy}
    if max_instances:
        app["maxInstances"] = max_instances
    config = {
        "heartbeat": 5,
        "loginTimeout": 5,
        "resumeWindow": 30,
        "drainTimeout": 1,
        "apps": [app, {"sdkAppID": APP2.sdkappid, "secretKey": APP2.key, "policy": "dual"}],
    }
    if INTEROP_REDIS:
        config["redis"] = INTEROP_REDIS
    config.update(top)
    return config


def launch(config: dict | str, directory: pathlib.Path, env: dict | None = None, name: str = "server") -> Server:
    """Starts `switchboard serve` with `config`: a dict (written as JSON; listen/admin filled in
    with free ports unless given) or YAML text with `{listen}` and `{admin}` placeholders."""
    if not BIN.exists():
        pytest.skip(f"{BIN} not built (set SWITCHBOARD_BIN or run `swift build`)")
    last_error = ""
    for attempt in range(3):  # a free port can be taken between our probe and the bind
        port, admin_port = free_port(), free_port()
        if isinstance(config, str):
            path = directory / f"{name}-{attempt}.yaml"
            path.write_text(config.format(listen=f"127.0.0.1:{port}", admin=f"127.0.0.1:{admin_port}"))
        else:
            config = dict(config)
            config.setdefault("listen", f"127.0.0.1:{port}")
            config.setdefault("admin", f"127.0.0.1:{admin_port}")
            port = int(config["listen"].rsplit(":", 1)[1])
            admin_port = int(config["admin"].rsplit(":", 1)[1])
            path = directory / f"{name}-{attempt}.json"
            path.write_text(json.dumps(config, indent=2))
        out, err = directory / f"{name}-{attempt}.stdout", directory / f"{name}-{attempt}.stderr"
        with open(out, "wb") as o, open(err, "wb") as e:
            proc = subprocess.Popen([str(BIN), "serve", "--config", str(path)], stdout=o, stderr=e,
                                    env={**os.environ, **(env or {})}, cwd=directory)
        server = Server(proc, port, admin_port, config, out, err)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if READY in out.read_text(errors="replace") and (not INTEROP_REDIS or admin_ready(admin_port)):
                server.ready_at = time.monotonic()
                return server
            if proc.poll() is not None:
                break
            time.sleep(0.01)
        else:
            proc.kill()
            proc.wait()
            raise AssertionError(f"server not ready within 20 s\n{server.stderr()}")
        last_error = server.stderr()
        if "cannot start" not in last_error:
            raise AssertionError(f"server exited with {proc.returncode} at start\n{last_error}")
    raise AssertionError(f"server could not bind after 3 attempts\n{last_error}")


@pytest.fixture
def start_server(tmp_path):
    """`start_server(policy="dual", max_instances=None, env=None, yaml=None, **top_level_keys) -> Server`.

    `yaml`: the whole configuration as YAML text, with `{listen}`/`{admin}` placeholders."""
    servers: list[Server] = []
    flush_interop_redis()

    def start(policy: str = "dual", max_instances: dict | None = None, env: dict | None = None,
              yaml: str | None = None, **top) -> Server:
        config = yaml if yaml is not None else base_config(policy, max_instances, **top)
        server = launch(config, tmp_path, env, name=f"server{len(servers)}")
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def server(start_server) -> Server:
    """A server with the default test configuration: policy dual, heartbeat 5 s, loginTimeout 5 s."""
    return start_server()


@pytest.fixture
def run_serve(tmp_path):
    """Runs `switchboard serve` on a config that must be refused; returns the CompletedProcess."""
    if not BIN.exists():
        pytest.skip(f"{BIN} not built (set SWITCHBOARD_BIN or run `swift build`)")

    def run(config: dict | str, env: dict | None = None, name: str = "bad") -> subprocess.CompletedProcess:
        if isinstance(config, dict):
            config = dict(config)
            config.setdefault("listen", f"127.0.0.1:{free_port()}")
            config.setdefault("admin", f"127.0.0.1:{free_port()}")
            text = json.dumps(config)
        else:
            text = config
        path = tmp_path / f"{name}.yaml"
        path.write_text(text)
        try:
            return subprocess.run([str(BIN), "serve", "--config", str(path)], capture_output=True, text=True,
                                  timeout=10, env={**os.environ, **(env or {})})
        except subprocess.TimeoutExpired:
            raise AssertionError("the server accepted a configuration it should refuse (still running after 10 s)") from None

    return run
