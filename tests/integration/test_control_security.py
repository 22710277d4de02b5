"""Control socket: the caller is who the kernel says (SO_PEERCRED), commands are authorized, deadlines hold."""
from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import time
import traceback
from pathlib import Path

import pytest

from firmware import control
from firmware.control import ControlClient, ControlServer
from firmware.security.audit import SecurityAudit
from firmware.security.control_gate import ControlGate
from firmware.security.peer import PeerPolicy, parse_uid_map
from firmware.security.privileges import Privilege
from firmware.security.users import UserStore
from firmware.storage.eventlog import EventLog

NOBODY = 65534

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to connect as another uid")


@pytest.fixture
def sock_dir():
    """A directory another account can reach (pytest's tmp_path is under a 0700 directory of root's)."""
    path = Path(tempfile.mkdtemp(prefix="ctl-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def meter(tmp_path, sock_dir):
    """control.sock with the supervisor's gate; handlers record the user label they were given."""
    users = UserStore(tmp_path / "data")
    users.add("alice", "pw", frozenset({Privilege.READ, Privilege.PEAK_DEMAND_RESET}), frozenset({"control"}))
    events = EventLog(tmp_path / "data")
    ran: list[tuple[str, str]] = []
    server = ControlServer(sock_dir / "control.sock", {
        "status": lambda user="": {"state": "ok"},
        "shutdown": lambda user="": ran.append(("shutdown", user)) or "stopping",
    }, fallback=lambda cmd, args, user: ran.append((cmd, user)) or "done",
        gate=ControlGate(PeerPolicy(users, parse_uid_map(["65534=alice"])), SecurityAudit(events, None, "control")),
        mode=0o666)
    server.start()
    yield server, ran, events
    server.stop()
    users.close()


def as_uid(uid: int, path, requests: list[dict]) -> list[dict]:
    """Send requests from a child process running as ``uid``; its replies."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:                                        # child: drop to uid, talk, report, exit
        try:
            os.close(r)
            os.setgid(uid)
            os.setuid(uid)
            out = []
            for req in requests:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                    s.settimeout(10)
                    s.connect(str(path))
                    s.sendall((json.dumps(req) + "\n").encode())
                    out.append(json.loads(s.makefile("rb").readline()))
            os.write(w, json.dumps(out).encode())
        except BaseException:  # noqa: BLE001 - the forked child reports any failure to the test, then exits
            os.write(w, json.dumps([{"child_error": traceback.format_exc()}]).encode())
        finally:
            os._exit(0)
    os.close(w)
    data = b""
    while chunk := os.read(r, 65536):
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    return json.loads(data)


def test_the_user_field_is_a_note_and_privileges_come_from_the_peer_uid(meter, tmp_path):
    server, ran, events = meter
    replies = as_uid(NOBODY, server.path, [
        {"cmd": "status", "user": "root"},
        {"cmd": "metrology.preset", "args": {"register": "wh_delivered", "value": 1e12}, "user": "mallory"},
        {"cmd": "shutdown", "user": "root"},
        {"cmd": "upgrade.install", "args": {"path": "/tmp/x"}, "user": "root"},
        {"cmd": "metrology.demand_reset", "user": "mallory"},
    ])
    assert replies[0] == {"ok": True, "result": {"state": "ok"}}
    for reply in replies[1:4]:
        assert reply["ok"] is False and reply["kind"] == "AccessDenied"
    assert "user 'alice' lacks the setup privilege" in replies[1]["error"]
    assert "lacks the master privilege" in replies[2]["error"]
    assert replies[4]["ok"] is True
    # only the demand reset ran; its audit label is the uid's user, with uid and pid, and the claim apart
    assert len(ran) == 1 and ran[0][0] == "metrology.demand_reset"
    assert ran[0][1].startswith(f"alice (uid {NOBODY}, pid ") and ran[0][1].endswith("claiming 'mallory'")
    refused = [e for e in events.read() if e["cause"] == "access_denied"]
    assert [e["priority"] for e in refused] == [128, 128, 128]
    assert all(e["detail"]["uid"] == NOBODY and e["detail"]["pid"] > 0 for e in refused)


def test_root_is_master_and_an_unmapped_uid_may_only_read(meter, tmp_path):
    server, ran, _ = meter
    assert ControlClient(server.path, user="whoever").call("shutdown") == "stopping"
    assert ran[-1][1].startswith("whoever (uid 0, pid ")         # root names whom it acts for
    server.gate.policy.uid_map.clear()
    replies = as_uid(NOBODY, server.path, [{"cmd": "status"}, {"cmd": "metrology.demand_reset"}])
    assert replies[0]["ok"] and not replies[1]["ok"]
    assert f"user 'uid{NOBODY}' lacks the peak-demand-reset privilege" in replies[1]["error"]


def test_upgrade_check_is_no_read_command(meter):
    """upgrade.check opens the path it is given as the upgrade service (root on the device): existence and size
    of any file would leak to whoever may read."""
    server, ran, events = meter
    replies = as_uid(NOBODY, server.path, [{"cmd": "upgrade.check", "args": {"path": "/etc/shadow"}}])
    assert replies[0]["ok"] is False and "lacks the master privilege" in replies[0]["error"], replies
    assert ran == []
    assert [e["cause"] for e in events.read()] == ["access_denied"]


def test_sixteen_idle_connections_do_not_block_status(meter, monkeypatch):
    server, _, _ = meter
    monkeypatch.setattr(control, "REQUEST_DEADLINE_S", 1.0)
    idle = []
    for _ in range(control.MAX_CONNECTIONS):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(str(server.path))
        s.sendall(b'{"cmd": "sta')                     # a request that never ends
        idle.append(s)
    time.sleep(0.2)
    t0 = time.monotonic()
    assert ControlClient(server.path, timeout_s=2).call("status") == {"state": "ok"}   # the reserve serves root
    assert time.monotonic() - t0 < 0.5
    # the idle ones are dropped at their deadline (1 s here, 5 s by default), trickling bytes or not
    for s in idle:
        s.sendall(b"t")
    deadline = time.monotonic() + 3.0
    for s in idle:
        s.settimeout(max(0.01, deadline - time.monotonic()))
        assert s.recv(100) == b""
        s.close()
    assert server.stats["timed_out"] == control.MAX_CONNECTIONS
    # and every slot is free again: a non-root reader is served
    assert as_uid(NOBODY, server.path, [{"cmd": "status"}])[0]["ok"]


def test_service_sockets_refuse_other_accounts(sock_dir):
    server = ControlServer(sock_dir / "metrology.sock", {"ping": lambda user="": "pong"}, mode=0o666)
    server.start()
    try:
        reply = as_uid(NOBODY, server.path, [{"cmd": "ping"}])[0]
        assert reply.get("ok") is False and "meter's own processes only" in reply["error"], reply
        assert ControlClient(server.path).call("ping") == "pong"
    finally:
        server.stop()
