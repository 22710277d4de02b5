"""The one authorization point: privileges, access modes, the revenue lock's list; security events and syslog."""
import re
import socket

import pytest

from firmware.security.audit import SecurityAudit
from firmware.security.authorize import (
    OPERATIONS,
    REVENUE_LOCKED,
    Access,
    Identity,
    authorize,
    blocked_by_revenue_lock,
    decide,
    operation_for_command,
)
from firmware.security.privileges import Privilege
from firmware.storage.syslog import SyslogSender, format_message, severity
from firmware.storage.eventlog import EventLog
from hal.errors import AccessDenied


def who(*privileges):
    return Identity("alice", frozenset(privileges), "web", uid=1001, pid=42)


def test_each_operation_needs_its_privilege_and_master_has_all():
    for name, op in OPERATIONS.items():
        assert decide(who(op.privilege), name).allowed, name
        others = set(Privilege) - {op.privilege, Privilege.MASTER}
        assert not decide(who(*others), name).allowed, name
        assert decide(Identity.master("root", "control"), name).allowed


def test_refusal_says_what_who_and_why():
    with pytest.raises(AccessDenied) as err:
        authorize(who(Privilege.READ), "demand_reset", "web")
    assert str(err.value) == "peak demand reset refused over web: user 'alice' lacks the peak-demand-reset privilege"
    with pytest.raises(AccessDenied, match="only a master user"):
        authorize(who(Privilege.SETUP), "format_disk")


def test_access_modes():
    reader = who(Privilege.READ, Privilege.PEAK_DEMAND_RESET)
    assert decide(reader, "read", access=Access.READ_ONLY)
    assert not decide(reader, "demand_reset", access=Access.READ_ONLY)
    assert "access is read-only" in decide(reader, "demand_reset", "modbus", access="read-only").reason
    assert not decide(reader, "read", access=Access.NONE)
    assert decide(reader, "demand_reset", access=Access.READ_WRITE)


def test_revenue_lock_list_holds_for_everyone():
    root = Identity.master("root", "control")
    for op in REVENUE_LOCKED | {"demand_reset", "billing_reset"}:
        d = decide(root, op, revenue_locked=True)
        assert not d.allowed and "revenue-locked" in d.reason, op
        assert decide(root, op, revenue_locked=False)
    assert decide(root, "demand_reset", revenue_locked=True, resets_when_locked=True)
    assert not decide(root, "energy_reset", revenue_locked=True, resets_when_locked=True)
    for op in ("demand_sync", "freeze", "time_set", "read", "shutdown", "config_set"):
        assert decide(root, op, revenue_locked=True), op
    assert blocked_by_revenue_lock("upgrade_install") and not blocked_by_revenue_lock("demand_sync")


def test_control_commands_map_to_operations():
    assert operation_for_command("metrology.demand_reset") == "demand_reset"
    assert operation_for_command("upgrade.install") == "upgrade_install"
    assert operation_for_command("status") == operation_for_command("comms.stats") == "read"
    assert operation_for_command("acquisition.stall") == "diagnostic"
    assert operation_for_command("metrology.something_new") == "metrology.something_new"   # unknown: master


def test_identity_label_keeps_the_claim_apart_from_the_identity():
    ident = Identity("uid1001", frozenset({Privilege.READ}), "control", uid=1001, pid=4242, note="mallory\n")
    assert ident.label() == "uid1001 (uid 1001, pid 4242) claiming 'mallory?'"


@pytest.mark.parametrize("priority,sev", [(255, 2), (192, 2), (191, 4), (128, 4), (127, 5), (64, 5), (63, 6),
                                          (0, 6)])
def test_severity_map_of_spec_5(priority, sev):
    assert severity(priority) == sev


# RFC 5424 §6: PRI VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID SP STRUCTURED-DATA [SP MSG]
RFC5424 = re.compile(rb'<(\d{1,3})>1 (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z) (\S+) (\S+) (\d+) (\S+) '
                     rb'\[meter@32473((?: [^= \]]+="(?:[^"\\\]]|\\.)*")*)\] \xef\xbb\xbf(.*)', re.S)


def test_security_events_reach_the_event_log_and_a_syslog_collector_on_loopback(tmp_path):
    collector = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    collector.bind(("127.0.0.1", 0))
    collector.settimeout(2.0)
    log = EventLog(tmp_path, cutoff=5)
    audit = SecurityAudit(log, SyslogSender("127.0.0.1", collector.getsockname()[1]), source="web")
    audit.record("login_valid", "alice", "logged in over web")
    audit.record("login_invalid", "alice", "wrong password", {"protocol": "web", "note": 'a "quoted" ]'})
    audit.record("lockout", "alice", "locked out of web")
    got = [RFC5424.fullmatch(collector.recv(4096)) for _ in range(3)]
    assert all(got), got
    # facility 4 (auth) * 8 + severity: 0 -> 6, 128 -> 4, 255 -> 2
    assert [int(m.group(1)) for m in got] == [38, 36, 34]
    assert [m.group(6) for m in got] == [b"login_valid", b"login_invalid", b"lockout"]
    assert b'note="a \\"quoted\\" \\]"' in got[1].group(7)
    # the event log keeps what is above its cutoff (5): the valid login (priority 0) is not recorded
    assert [(e["cause"], e["priority"], e["user"]) for e in log.read()] == [("login_invalid", 128, "alice"),
                                                                          ("lockout", 255, "alice")]
    audit.close()
    collector.close()


def test_syslog_refuses_host_names_and_never_raises_when_unreachable():
    with pytest.raises(ValueError, match="not an IP address"):
        SyslogSender("syslog.example.com")
    sender = SyslogSender("127.0.0.1", 9)            # discard port, nobody listening: UDP just drops it
    sender.send(255, "lockout", "x")
    assert len(format_message(0, "m", "x" * 5000)) == 2048
    sender.close()


def test_logins_record_each_attempt_and_lock_out_per_protocol(tmp_path):
    from firmware.security.login import Logins
    from firmware.security.users import UserStore

    users = UserStore(tmp_path, lockout_attempts=3, lockout_duration_s=600)
    users.add("bob", "right", frozenset({Privilege.READ, Privilege.PEAK_DEMAND_RESET}))
    log = EventLog(tmp_path, cutoff=0)          # cutoff 0: the valid login (priority 0) is still not above it
    logins = Logins(users, SecurityAudit(log, None, "web"))
    identity = logins.login("bob", "right", "web", {"address": "192.0.2.7"})
    assert identity.user == "bob" and authorize(identity, "demand_reset", "web").allowed
    for _ in range(3):
        with pytest.raises(AccessDenied, match="wrong user name or password|locked out"):
            logins.login("bob", "guess", "display")
    with pytest.raises(AccessDenied, match="locked out of display"):
        logins.login("bob", "right", "display")
    assert logins.login("bob", "right", "web").user == "bob"
    events = log.read()
    # The two wrong guesses before the lockout are one record that counts both (guesses are aggregated, so a
    # flood of them cannot push the audit trail out of the log).
    assert [(e["cause"], e["priority"]) for e in events] == [
        ("login_invalid", 128), ("lockout", 255), ("login_invalid", 128)]
    assert events[0]["detail"]["count"] == 2 and events[0]["detail"]["first"] < events[0]["detail"]["last"]
    assert events[1]["detail"] == {"protocol": "display", "failures": 3}
    logins.close()


def test_upgrade_check_is_not_a_read():
    # it opens any path it is given as the meter's account: existence and size of files would leak to readers
    from firmware.security.authorize import OPERATIONS, operation_for_command

    assert OPERATIONS[operation_for_command("upgrade.check")].privilege is Privilege.MASTER


def test_a_refused_login_does_not_tell_whether_the_name_exists(tmp_path):
    from firmware.security.login import Logins
    from firmware.security.users import UserStore

    users = UserStore(tmp_path, lockout_attempts=2, lockout_duration_s=600)
    users.add("bob", "right", frozenset({Privilege.READ}))
    logins = Logins(users, SecurityAudit(EventLog(tmp_path), None, "web"))
    answers = []
    for name, password in (("bob", "guess"), ("bob", "guess"), ("bob", "right"), ("nobody", "x")):
        with pytest.raises(AccessDenied) as refused:
            logins.login(name, password, "web")
        answers.append(str(refused.value))
    assert len(set(answers)) == 1, answers          # locked out, wrong password, no such user: one answer
    causes = [e["effect"] for e in EventLog(tmp_path).read()]
    assert any("locked out" in c for c in causes)    # the event log says why
    logins.close()
