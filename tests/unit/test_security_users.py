"""Users, argon2id hashes, lockout per user and protocol (persisted), sessions, the CLI (SPEC §8)."""
import json
import os
import threading

import pytest

from firmware.security.authorize import Identity
from firmware.security.privileges import Privilege, parse_privileges
from firmware.security.sessions import Sessions
from firmware.security.users import FACTORY_PASSWORD, FACTORY_USER, MAX_USERS, UserStore
from hal.errors import AccessDenied, ConfigError

READ = frozenset({Privilege.READ})


@pytest.fixture
def store(tmp_path):
    s = UserStore(tmp_path, lockout_attempts=8, lockout_duration_s=1440 * 60)
    yield s
    s.close()


def test_factory_user_is_flagged_until_its_password_changes(store, tmp_path):
    user = store.get(FACTORY_USER)
    assert user.default_password and user.privileges == frozenset(Privilege)
    assert store.login(FACTORY_USER, FACTORY_PASSWORD, "web").ok
    assert len(store.checklist()) == 1 and "default password" in store.checklist()[0]
    store.set_password(FACTORY_USER, "n3w-Secret")
    assert not store.get(FACTORY_USER).default_password and store.checklist() == []
    assert not store.login(FACTORY_USER, FACTORY_PASSWORD, "web").ok
    # Only an argon2id hash is stored, never the password.
    raw = b"".join(f.read_bytes() for f in tmp_path.glob("security.db*"))   # the file and its WAL
    assert b"n3w-Secret" not in raw and b"$argon2id$" in raw


def test_limits_on_names_passwords_and_count(store):
    with pytest.raises(ConfigError, match="1 to 16 characters"):
        store.add("alice", "x" * 17, READ)
    with pytest.raises(ConfigError, match="not valid"):
        store.add("Alice Smith", "pw", READ)
    with pytest.raises(ConfigError, match="privilege 'admin' is not known"):
        parse_privileges(["admin"])
    for i in range(MAX_USERS - 1):                   # the factory user is the 50th
        store.add(f"u{i}", "pw", READ)
    with pytest.raises(ConfigError, match="at most 50 users"):
        store.add("one-too-many", "pw", READ)


def test_last_security_user_cannot_be_removed(store):
    with pytest.raises(AccessDenied, match="security privilege"):
        store.remove(FACTORY_USER)
    store.add("sec", "pw", frozenset({Privilege.SECURITY}))
    store.remove(FACTORY_USER)
    assert [u.name for u in store.all_users()] == ["sec"]


def test_lockout_after_8_failures_is_per_protocol_and_survives_a_restart(tmp_path):
    store = UserStore(tmp_path, 8, 3600)
    store.add("alice", "right", READ)
    t0 = 1_000_000.0
    results = [store.login("alice", "wrong", "display", now=t0 + i) for i in range(8)]
    assert [r.event for r in results] == ["login_invalid"] * 7 + ["lockout"]
    assert results[-1].failures == 8 and results[-1].locked_until == pytest.approx(t0 + 7 + 3600)
    store.close()
    store = UserStore(tmp_path, 8, 3600)             # a restart does not forget the lockout
    assert not store.login("alice", "right", "display", now=t0 + 60).ok
    assert store.login("alice", "right", "web", now=t0 + 60).ok        # other protocols are not locked
    assert store.login("alice", "right", "display", now=t0 + 7 + 3601).ok  # the lockout ends after its duration
    assert store.lockout_state("alice", "display", now=t0 + 7 + 3601) == (0, 0.0)
    store.close()


def test_a_good_login_clears_the_count(store):
    store.add("bob", "right", READ)
    for _ in range(7):
        store.login("bob", "wrong", "web")
    assert store.login("bob", "right", "web").ok
    assert store.lockout_state("bob", "web")[0] == 0


def test_brute_force_from_several_protocols_at_once_locks_each_protocol_separately(tmp_path):
    store = UserStore(tmp_path, 8, 3600)
    store.add("carol", "right", READ)
    attacked = ("web", "display")
    events: dict[str, list[str]] = {p: [] for p in attacked}

    def attack(protocol):
        for i in range(12):
            events[protocol].append(store.login("carol", f"guess{i}", protocol).event)

    threads = [threading.Thread(target=attack, args=(p,)) for p in attacked]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for p in attacked:
        # exactly one lockout each, at the 8th failure; the 4 guesses after it are refused without counting
        assert events[p].count("lockout") == 1 and events[p][7] == "lockout", events[p]
        assert store.lockout_state("carol", p)[0] == 8
        assert not store.login("carol", "right", p).ok
    store.unlock("carol", "web")                     # ends the web's lockout only
    assert store.login("carol", "right", "web").ok and not store.login("carol", "right", "display").ok
    store.close()


@pytest.mark.parametrize("protocol", ["modbus", "bacnet", "control"])
def test_protocols_without_a_login_have_no_lockout(store, protocol):
    store.add("gail", "right", READ)
    for call in (lambda: store.login("gail", "wrong", protocol), lambda: store.lockout_state("gail", protocol),
                 lambda: store.unlock("gail", protocol)):
        with pytest.raises(ConfigError, match=f"protocol '{protocol}' has no login, so no lockout.*web, display"):
            call()
    assert store.get("gail").protocols >= {protocol}     # still says whose privileges apply over it


def test_lockouts_of_protocols_without_a_login_are_dropped_from_an_old_accounts_file(tmp_path):
    import sqlite3
    store = UserStore(tmp_path)
    store.add("hank", "right", READ)
    store.login("hank", "wrong", "web")
    store.close()
    db = sqlite3.connect(tmp_path / "security.db")      # as a meter before LOGIN_PROTOCOLS left it
    db.execute("INSERT INTO lockouts VALUES ('hank', 'modbus', 8, 9e18)")
    db.commit()
    db.close()
    store = UserStore(tmp_path)
    rows = store._db.execute("SELECT name, protocol, failures FROM lockouts").fetchall()
    assert rows == [("hank", "web", 1)]
    store.close()


def test_unknown_names_are_refused_without_growing_the_lockout_table(store):
    for i in range(20):
        assert store.login(f"nobody{i}", "x", "web").event == "login_invalid"
    assert store._db.execute("SELECT COUNT(*) FROM lockouts").fetchone()[0] == 0


def test_a_user_not_allowed_over_a_protocol_cannot_log_in_over_it(store):
    store.add("dave", "right", READ, frozenset({"web"}))
    assert store.login("dave", "right", "web").ok
    assert not store.login("dave", "right", "display").ok


def test_sessions_end_after_the_inactivity_timeout():
    clock = [0.0]
    sessions = Sessions(900.0, clock=lambda: clock[0])
    token = sessions.open(Identity.master("alice", "web"))
    clock[0] = 899.0
    assert sessions.get(token).user == "alice"       # use restarts the timeout
    clock[0] = 899.0 + 899.0
    assert sessions.get(token) is not None
    clock[0] += 901.0
    assert sessions.get(token) is None


def _meter(tmp_path, monkeypatch, capsys, *args, password=None):
    """``meter user ...`` through the real command-line entry point (in this process: it is fast)."""
    from firmware.cli import main

    if password:
        monkeypatch.setenv("METER_PASSWORD", password)
    code = main(["user", "--config", str(tmp_path / "meter.toml"), *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_add_passwd_list_remove(tmp_path, monkeypatch, capsys):
    (tmp_path / "meter.toml").write_text(f'[meter]\ndata_dir = "{tmp_path}/data"\n')
    m = lambda *a, **k: _meter(tmp_path, monkeypatch, capsys, *a, **k)  # noqa: E731
    code, out, err = m("add", "erin", "--privileges", "read,peak-demand-reset", "--protocols", "web,modbus",
                       password="pw1")
    assert code == 0, err
    assert json.loads(out) == {"name": "erin", "privileges": ["read", "peak-demand-reset"],
                               "protocols": ["modbus", "web"], "default_password": False}
    code, out, err = m("list")
    assert "factory default password" in err
    assert m("passwd", FACTORY_USER, password="changed")[0] == 0
    code, out, err = m("list")
    assert {u["name"]: u["default_password"] for u in json.loads(out)} == {"erin": False, FACTORY_USER: False}
    code, out, err = m("add", "erin", "--privileges", "read", password="x")
    assert code == 1 and "exists already" in err
    assert m("remove", "erin")[0] == 0
    store = UserStore(tmp_path / "data")
    assert store.get("erin") is None and store.login(FACTORY_USER, "changed", "web").ok
    store.close()
    from firmware.storage.eventlog import EventLog
    causes = [(e["cause"], e["priority"]) for e in EventLog(tmp_path / "data").read()]
    assert causes == [("user_change", 128)] * 3       # add, passwd, remove


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_root_leaves_the_accounts_file_to_the_owner_of_data_dir(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    os.chown(data, 65534, 65534)                   # the meter's account on the device
    store = UserStore(data)
    store.add("alice", "pw", READ)
    store.close()
    for f in data.glob("security.db*"):
        st = f.stat()
        assert (st.st_uid, st.st_mode & 0o777) == (65534, 0o600), f


def test_a_busy_session_still_ends_at_its_maximum_age_and_a_stamp_follows_the_account(tmp_path):
    now = [0.0]
    sessions = Sessions(900.0, clock=lambda: now[0], max_age_s=3600.0)
    token = sessions.open(Identity.master("alice", "web"), stamp="s1")
    for _ in range(70):                     # a request every minute for 70 minutes
        now[0] += 60.0
        if sessions.get(token) is None:
            break
    assert now[0] == 3660.0                 # ended at the first request past the hour, not before
    store = UserStore(tmp_path)
    try:
        store.add("bob", "bob-pw-1", frozenset({Privilege.SETUP}))
        first = store.stamp("bob")
        store.set_password("bob", "bob-pw-2")
        second = store.stamp("bob")
        store.set_privileges("bob", frozenset({Privilege.READ}))
        assert len({first, second, store.stamp("bob")}) == 3
        store.remove("bob")
        assert store.stamp("bob") is None
    finally:
        store.close()
