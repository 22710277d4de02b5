"""Configuration: typed, bounded schema; refusal messages; atomic versioned saves."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import tomllib

import pytest

from firmware.config import meter_schema
from firmware.config.schema import (
    Bool,
    Duration,
    Enum,
    Float,
    Int,
    IPAddress,
    ListOf,
    Option,
    Schema,
    Section,
    Str,
    Table,
)
from firmware.config.store import ConfigStore, load_file
from hal.errors import ConfigError
from tests.conftest import iterations

SCHEMA = Schema([
    Section("net", [
        Option("port", Int(1, 65535), 502, "TCP port"),
        Option("gain", Float(0.5, 2.0), 1.0, "gain"),
        Option("enabled", Bool(), True, "on/off"),
        Option("mode", Enum("none", "read-only", "read-write"), "read-only", "access"),
        Option("server", IPAddress(4), "192.168.1.1", "server"),
        Option("interval", Duration(1, 3600), 60.0, "interval"),
        Option("name", Str(8, r"[a-z]+", "lower-case letters"), "abc", "name"),
        Option("weights", ListOf(Int(0, 9), 1, 3), (1,), "weights"),
        Option("users", Table((Option("login", Str(16), "x", "login"), Option("level", Int(0, 7), 1, "level")),
                              max_len=2), (), "users"),
    ]),
    Section("net.rtu", [Option("baud", Enum("9600", "19200"), "9600", "baud")]),
])


@pytest.mark.parametrize("doc, fragment", [
    ({"net": {"port": 70000}}, "[net] option 'port': 70000 is out of range; allowed 1..65535"),
    ({"net": {"port": "502"}}, "[net] option 'port': '502' is not an integer; allowed 1..65535"),
    ({"net": {"port": True}}, "option 'port': True is not an integer"),
    ({"net": {"gain": 2.5}}, "[net] option 'gain': 2.5 is out of range; allowed 0.5..2"),
    ({"net": {"gain": "x"}}, "option 'gain': 'x' is not a number"),
    ({"net": {"enabled": "yes"}}, "option 'enabled': 'yes' is not a boolean; allowed true or false"),
    ({"net": {"mode": "write"}}, "option 'mode': 'write' is not one of the allowed values; allowed 'none', "
                                 "'read-only', 'read-write'"),
    ({"net": {"server": "meter.local"}}, "option 'server': 'meter.local' is not an IP address"),
    ({"net": {"server": "::1"}}, "option 'server': '::1' is not an IPv4 address"),
    ({"net": {"interval": "2 weeks"}}, "option 'interval': '2 weeks' is not a duration"),
    ({"net": {"interval": "2 h"}}, "option 'interval': '2 h' is out of range; allowed 1 s..1 h"),
    ({"net": {"name": "ABC"}}, "option 'name': 'ABC' is not valid; allowed lower-case letters"),
    ({"net": {"name": "abcdefghij"}}, "option 'name': 'abcdefghij' is longer than 8 characters"),
    ({"net": {"weights": [1, 2, 3, 4]}}, "option 'weights': the list has 4 items; allowed 1..3 items"),
    ({"net": {"weights": [1, 12]}}, "option 'weights': item 1: 12 is out of range; allowed 0..9"),
    ({"net": {"users": [{"login": "a", "level": 9}]}}, "option 'users': entry 0: option 'level': 9 is out of range"),
    ({"net": {"users": [{"login": "a", "colour": 1}]}}, "option 'colour' is not valid in entry 0"),
    ({"net": {"porte": 1}}, "[net] option 'porte' is not valid in section [net]; valid options: port, gain"),
    ({"nett": {"port": 1}}, "section [nett] is not known; known sections: net, net.rtu"),
    ({"net": {"rtu": {"baud": "300"}}}, "[net.rtu] option 'baud': '300' is not one of the allowed values"),
    ({"net": {"rtu": {"parity": "E"}}}, "[net.rtu] option 'parity' is not valid in section [net.rtu]"),
])
def test_every_kind_of_bad_value_names_section_option_and_allowed(doc, fragment):
    with pytest.raises(ConfigError) as err:
        SCHEMA.load(doc, source="x.toml")
    assert fragment in str(err.value)
    assert str(err.value).startswith("config x.toml: ")


def test_good_values_are_parsed_and_typed():
    cfg = SCHEMA.load({"net": {"port": 5020, "interval": "15 min", "server": "10.0.0.1", "weights": [3, 4],
                               "users": [{"login": "ops"}], "rtu": {"baud": "19200"}}})
    net = cfg.section("net")
    assert (net.port, net.interval, net.server, net.weights) == (5020, 900.0, "10.0.0.1", (3, 4))
    assert net.users[0].login == "ops" and net.users[0].level == 1
    assert cfg["net.rtu"].baud == "19200"
    with pytest.raises(AttributeError):
        net.port = 1  # type: ignore[misc]


def test_meter_runs_with_an_empty_file(tmp_path):
    (tmp_path / "empty.toml").write_text("")
    cfg = load_file(tmp_path / "empty.toml")
    defaults = meter_schema().defaults()
    assert cfg.to_dict() == defaults.to_dict()
    assert cfg.version == 0


def test_invalid_toml_names_the_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[log\nlevel = 1")
    with pytest.raises(ConfigError, match=r"bad.toml: not valid TOML"):
        load_file(bad)


def test_save_bumps_version_and_records_who_and_what(tmp_path):
    store = ConfigStore(tmp_path / "meter.toml")
    assert store.load().version == 0
    cfg = store.update({"log": {"level": "debug"}}, user="alice", reason="diagnose")
    assert cfg.version == 1 and cfg.log.level == "debug"
    cfg = store.update({"supervisor": {"max_restarts": 9}}, user="bob")
    assert cfg.version == 2 and cfg.log.level == "debug" and cfg.supervisor.max_restarts == 9
    assert cfg.meta.changed_by == "bob"
    history = store.history()
    assert [h["version"] for h in history] == [1, 2]
    assert history[0]["user"] == "alice" and history[0]["reason"] == "diagnose"
    assert history[0]["changes"] == [{"option": "log.level", "old": "info", "new": "debug"}]
    with pytest.raises(ConfigError, match="out of range"):
        store.update({"supervisor": {"max_restarts": 0}}, user="bob")
    assert store.load().version == 2  # a refused change writes nothing
    with pytest.raises(ConfigError, match="must name the user"):
        store.update({"log": {"level": "info"}}, user="")


_SAVER = """
import sys
from firmware.config.store import ConfigStore
store = ConfigStore(sys.argv[1])
i = 0
while True:
    i += 1
    store.update({"meter": {"name": "n%d" % i}}, user="writer")
    print(i, flush=True)
"""


def test_crash_during_save_never_leaves_a_corrupt_or_empty_file(tmp_path, subprocess_env):
    path = tmp_path / "meter.toml"
    ConfigStore(path).update({"meter": {"name": "n0"}}, user="setup")
    rng = random.Random(1234)
    for _ in range(iterations(ci=30, local=30, soak=300)):
        proc = subprocess.Popen([sys.executable, "-c", _SAVER, str(path)], stdout=subprocess.PIPE,
                                env=subprocess_env)
        time.sleep(rng.uniform(0.3, 0.8))
        proc.send_signal(signal.SIGKILL)
        out = proc.communicate()[0].decode().split()
        data = path.read_bytes()
        assert data, "configuration file is empty after a crash"
        cfg = load_file(path)  # parses and validates: never corrupt
        assert cfg.meter.name.startswith("n")
        assert tomllib.loads(data.decode())["meta"]["version"] == cfg.version
        if out:
            # Saves the writer confirmed are on disk: the file holds the last one or one after it.
            assert int(cfg.meter.name[1:]) >= int(out[-1])
    ConfigStore(path).update({"meter": {"name": "final"}}, user="setup")
    leftovers = [p for p in os.listdir(tmp_path) if p.startswith(".meter.toml.tmp")]
    assert leftovers == [], "a save after crashes must remove the temp files the crashed writers left"


def test_cli_validate_show_defaults(tmp_path, subprocess_env):
    bad = tmp_path / "bad.toml"
    bad.write_text("[supervisor]\nmax_restarts = 0\n")
    run = subprocess.run([sys.executable, "-m", "firmware.cli", "config", "validate", str(bad)],
                         capture_output=True, text=True, env=subprocess_env)
    assert run.returncode == 1
    assert "[supervisor] option 'max_restarts': 0 is out of range; allowed 1..1000" in run.stderr
    good = tmp_path / "good.toml"
    good.write_text("[log]\nlevel = \"debug\"\n")
    run = subprocess.run([sys.executable, "-m", "firmware.cli", "config", "validate", str(good)],
                         capture_output=True, text=True, env=subprocess_env)
    assert run.returncode == 0 and "valid" in run.stdout
    run = subprocess.run([sys.executable, "-m", "firmware.cli", "config", "show", "--config", str(good)],
                         capture_output=True, text=True, env=subprocess_env, check=True)
    shown = tomllib.loads(run.stdout)
    assert shown["log"]["level"] == "debug" and shown["supervisor"]["max_restarts"] == 5
    run = subprocess.run([sys.executable, "-m", "firmware.cli", "config", "defaults"],
                         capture_output=True, text=True, env=subprocess_env, check=True)
    assert tomllib.loads(run.stdout)["log"]["level"] == "info"


def test_sealed_sections_refuse_changes_while_revenue_locked_and_log_the_attempt(tmp_path):
    from firmware.lockstate import set_file_lock
    from hal.errors import AccessDenied

    lock = tmp_path / "lock"
    store = ConfigStore(tmp_path / "meter.toml")
    store.update({"upgrade": {"revenue_lock_file": str(lock)}, "meter": {"run_dir": str(tmp_path / "run")}},
                 user="installer")
    sealed = next(s for s in meter_schema().sections if s.sealed)
    option = sealed.options[0]
    set_file_lock(lock, True)
    store.update({"log": {"level": "debug"}}, user="tech")  # not sealed: allowed while locked
    with pytest.raises(AccessDenied, match=rf"{sealed.name}.{option.name} cannot be changed while the meter is "
                                           "revenue-locked"):
        store.update({sealed.name: {option.name: _another_value(option)}}, user="mallory")
    refused = store.history()[-1]
    assert refused["refused"] == "revenue lock" and refused["user"] == "mallory"
    assert store.load().version == 2
    set_file_lock(lock, False)
    assert store.update({sealed.name: {option.name: _another_value(option)}}, user="tech").version == 3


def _another_value(option):
    kind = option.kind
    if isinstance(kind, Enum):
        return next(c for c in kind.choices if c != option.default)
    if isinstance(kind, Bool):
        return not option.default
    if isinstance(kind, Int):
        return kind.min if option.default != kind.min else kind.max
    if isinstance(kind, Float):
        return kind.min if option.default != kind.min else kind.max
    raise AssertionError(f"pick a sealed option with a simple kind, not {kind}")
