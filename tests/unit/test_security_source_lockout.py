"""Web lockout per (user, client address): failures lock out the source, not the victim; only failures from
``lockout_sources`` distinct addresses lock the user out for everyone, and then briefly (issue 30)."""
import pytest

from firmware.security.privileges import Privilege
from firmware.security.users import MAX_LOCKOUT_SOURCES_DURATION_S, MAX_SOURCES_PER_USER, UserStore

T0 = 1_800_000_000.0


@pytest.fixture
def store(tmp_path):
    s = UserStore(tmp_path, lockout_attempts=3, lockout_duration_s=86400, lockout_sources=4,
                  lockout_sources_duration_s=600)
    s.add("alice", "alice-pw", frozenset({Privilege.MASTER}))
    yield s
    s.close()


def fail(store, source, now, times=1):
    return [store.login("alice", "wrong", "web", now=now, source=source) for _ in range(times)][-1]


def test_failures_from_one_address_lock_out_that_address_only(store):
    last = fail(store, "192.0.2.66", T0, 3)
    assert last.event == "lockout" and "from 192.0.2.66" in last.reason
    assert not store.login("alice", "alice-pw", "web", now=T0 + 1, source="192.0.2.66").ok
    assert store.login("alice", "alice-pw", "web", now=T0 + 1, source="192.0.2.7").ok
    assert store.lockout_state("alice", "web", T0 + 1) == (0, 0.0)
    assert store.locked_sources("alice", "web", T0 + 1) == {"192.0.2.66": T0 + 86400}
    # the pair lock lasts lockout_duration, then that address may try again
    assert store.login("alice", "alice-pw", "web", now=T0 + 86401, source="192.0.2.66").ok


def test_a_good_login_clears_the_count_of_its_own_address_only(store):
    fail(store, "192.0.2.1", T0, 2)
    fail(store, "192.0.2.2", T0, 2)
    assert store.login("alice", "alice-pw", "web", now=T0 + 1, source="192.0.2.1").ok
    assert store.source_lockout_state("alice", "web", "192.0.2.1", T0 + 1) == (0, 0.0)
    assert fail(store, "192.0.2.2", T0 + 2).event == "lockout"


def test_many_addresses_lock_the_user_for_everyone_briefly_and_not_again_without_as_many(store):
    for i in range(3):
        assert fail(store, f"192.0.2.{i}", T0 + i).event == "login_invalid"
    last = fail(store, "192.0.2.3", T0 + 3)
    assert last.event == "lockout" and "for everyone after failed logins from 4 addresses" in last.reason
    assert last.locked_until == T0 + 3 + 600
    refused = store.login("alice", "alice-pw", "web", now=T0 + 10, source="198.51.100.9")
    assert not refused.ok and "locked out of web until" in refused.reason
    # nothing is counted while it lasts, and it ends after lockout_sources_duration
    assert store.login("alice", "alice-pw", "web", now=T0 + 604, source="198.51.100.9").ok
    # the addresses of that attack do not count again: another short lock needs 4 addresses failing anew
    for i in range(3):
        assert fail(store, f"192.0.2.{i}", T0 + 700 + i).event == "login_invalid"
    assert fail(store, "203.0.113.1", T0 + 710).event == "lockout"


def test_the_display_keeps_its_lockout_per_user(store):
    for _ in range(3):
        result = store.login("alice", "wrong", "display", now=T0)
    assert result.event == "lockout" and store.lockout_state("alice", "display", T0 + 1)[1] == T0 + 86400
    assert store.login("alice", "alice-pw", "web", now=T0 + 1, source="192.0.2.7").ok


def test_the_short_lock_is_bounded_and_unlock_and_password_change_clear_the_pairs(tmp_path):
    s = UserStore(tmp_path, lockout_sources_duration_s=86400)
    assert s.lockout_sources_duration_s == MAX_LOCKOUT_SOURCES_DURATION_S
    s.add("bob", "bob-pw", frozenset({Privilege.READ}))
    for _ in range(8):
        s.login("bob", "wrong", "web", source="192.0.2.5")
    assert s.source_lockout_state("bob", "web", "192.0.2.5")[1] > 0
    s.unlock("bob", "web")
    assert s.source_lockout_state("bob", "web", "192.0.2.5") == (0, 0.0)
    s.login("bob", "wrong", "web", source="192.0.2.5")
    s.set_password("bob", "bob-pw-2")
    assert s.source_lockout_state("bob", "web", "192.0.2.5") == (0, 0.0)
    s.close()


def test_counts_per_address_stay_bounded(store):
    with store._tx() as db:       # many addresses at once, as a spread-out attack would leave them
        db.executemany("INSERT INTO source_lockouts VALUES ('alice', 'web', ?, 1, 0, ?)",
                       [(f"a{i}", T0 + i) for i in range(MAX_SOURCES_PER_USER + 50)])
        db.execute("INSERT INTO lockouts VALUES ('alice', 'web', 4, ?)", (T0 + 5000,))
    fail(store, "192.0.2.200", T0 + 5001)
    with store._mutex:
        kept = store._db.execute("SELECT COUNT(*) FROM source_lockouts").fetchone()[0]
    assert kept == MAX_SOURCES_PER_USER
