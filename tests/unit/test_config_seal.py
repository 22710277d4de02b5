"""Sealed configuration: a hand edit of a sealed section is caught at start; revenue checks run at set time;
TOML that tomllib cannot take gives a clear error."""
from __future__ import annotations

import json

import pytest

from firmware.cli import main
from firmware.cli.run import check_seal
from firmware.config.store import ConfigStore
from firmware.lockstate import set_file_lock
from firmware.storage.eventlog import EventLog
from hal.errors import ConfigError


@pytest.fixture
def meter(tmp_path):
    path = tmp_path / "meter.toml"
    lock = tmp_path / "revenue_lock"
    store = ConfigStore(path)
    store.update({"meter": {"data_dir": str(tmp_path / "data"), "run_dir": str(tmp_path / "run")},
                  "upgrade": {"revenue_lock_file": str(lock)}, "metrology": {"ct_primary": 200.0}},
                 user="installer", reason="commissioning")
    return path, lock, store


def hand_edit(path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_hand_edit_while_locked_does_not_take_effect_and_is_recorded(meter, tmp_path):
    path, lock, store = meter
    set_file_lock(lock, True)
    # the review's edit: CT primary, and the lock file pointed somewhere that says nothing
    hand_edit(path, "ct_primary = 200.0", "ct_primary = 400.0")
    hand_edit(path, f'revenue_lock_file = "{lock}"', f'revenue_lock_file = "{tmp_path}/elsewhere"')
    config = store.load()
    assert config.metrology.ct_primary == 200.0                       # the sealed value stays in force
    # both are revenue-locked options: neither edit takes effect
    assert store.tamper.enforced and store.tamper.options == ["metrology.ct_primary", "upgrade.revenue_lock_file"]
    assert ConfigStore(path).load().metrology.ct_primary == 200.0     # every process reads the same
    assert ConfigStore(path).load().upgrade.revenue_lock_file == str(lock)
    version = config.version
    assert check_seal(store, config).metrology.ct_primary == 200.0
    events = EventLog(tmp_path / "data").read()
    assert [(e["cause"], e["priority"]) for e in events] == [("config_tamper", 255)]
    assert "metrology.ct_primary, upgrade.revenue_lock_file edited by hand" in events[0]["effect"]
    last = store.history()[-1]
    assert last["refused"] == "revenue lock" and last["changes"][0]["file"] == 400.0
    assert ConfigStore(path).load().version == version                 # no new version


def test_hand_edit_while_unlocked_is_saved_as_a_version_with_history(meter, tmp_path):
    path, lock, store = meter
    hand_edit(path, "ct_primary = 200.0", "ct_primary = 400.0")
    config = store.load()
    assert config.metrology.ct_primary == 400.0 and not store.tamper.enforced
    saved = check_seal(store, config)
    assert saved.metrology.ct_primary == 400.0 and saved.version == config.version + 1
    last = store.history()[-1]
    assert last["user"] == "hand edit" and last["hand_edit"] == [
        {"option": "metrology.ct_primary", "sealed": 200.0, "file": 400.0}]
    store.load()
    assert store.tamper is None                                       # sealed again


@pytest.mark.parametrize("change,message", [
    ({"revenue.tou": {"enabled": True, "holiday": [{"date": "2024-13-45"}]}}, "holiday 0: month must be in 1..12"),
    ({"revenue.load_profile": {"channels": ["wh_del", "kwh_bogus"]}}, "'kwh_bogus' is not known"),
])
def test_set_runs_the_revenue_codes_own_checks(meter, change, message):
    path, _, store = meter
    before = path.read_bytes()
    with pytest.raises(ConfigError, match=message):
        store.update(change, user="tech")
    assert path.read_bytes() == before


def test_validate_refuses_what_the_revenue_code_would(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('[[revenue.tou.holiday]]\ndate = "2024-13-45"\n')
    assert main(["config", "validate", str(bad)]) == 1
    assert "holiday 0: month must be in 1..12" in capsys.readouterr().err


@pytest.mark.parametrize("text,message", [
    ("[meter]\nname = " + "9" * 5000 + "\n", "not usable TOML"),
    ("[meter]\nname = " + "[" * 5000 + "]" * 5000 + "\n", "nested too deeply"),
])
def test_hostile_toml_is_a_clear_error(tmp_path, capsys, text, message):
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    assert main(["config", "validate", str(bad)]) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and str(bad) in err


def test_set_with_a_huge_number_is_a_clear_error(meter, capsys):
    path, _, _ = meter
    assert main(["config", "set", "--config", str(path), "--user", "t", "modbus.tcp_port=" + "9" * 5000]) == 1
    assert "not usable TOML" in capsys.readouterr().err


def test_seal_file_is_written_with_every_save(meter):
    path, _, store = meter
    seal = json.loads(path.with_name("meter.toml.seal").read_text())
    assert seal["version"] == store.load().version and seal["sections"]["metrology"]["ct_primary"] == 200.0


def forge(path, option: str, section: str, old, new, signature: str | None = None) -> None:
    """What an offline editor can do without the key: change the file and the seal's values and SHA-256."""
    from firmware.config.seal import digest

    hand_edit(path, f"{option} = {old}", f"{option} = {new}")
    seal_file = path.with_name("meter.toml.seal")
    seal = json.loads(seal_file.read_text())
    seal["sections"][section][option] = new
    seal["sha256"] = digest(seal["sections"])
    if signature is not None:
        seal["hmac"] = signature
    seal_file.write_text(json.dumps(seal))


@pytest.mark.parametrize("signature", [None, "", "00" * 32])
def test_file_and_seal_edited_together_do_not_pass_while_locked(meter, tmp_path, signature):
    path, lock, store = meter
    set_file_lock(lock, True)
    version = store.load().version
    forge(path, "ct_primary", "metrology", 200.0, 2000.0, signature)
    config = store.load()
    assert store.tamper is not None and store.tamper.locked and store.tamper.options == ["(seal)"]
    assert check_seal(store, config).version == version               # not accepted as a change
    events = EventLog(tmp_path / "data").read()
    assert [(e["cause"], e["priority"]) for e in events] == [("config_tamper", 255)]
    assert "does not verify against this meter's seal key" in events[0]["effect"]
    assert store.history()[-1]["refused"] == "revenue lock"


def test_the_seal_is_signed_with_a_key_kept_out_of_the_data_directory(meter, tmp_path):
    from firmware.config.sealkey import key_path

    path, _, store = meter
    seal = json.loads(path.with_name("meter.toml.seal").read_text())
    assert len(seal["hmac"]) == 64 and len(seal["key_id"]) == 16
    assert tmp_path not in key_path().parents and key_path().stat().st_mode & 0o777 == 0o600
