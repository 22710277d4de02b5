"""The SNMP options checked as a whole, and the engine's identity and this meter's secrets kept in data_dir/snmp."""
from __future__ import annotations

import json

import pytest

from firmware.comms.snmp.keystore import SecretStore, start_engine
from firmware.config.store import ConfigStore
from hal.errors import ConfigError


@pytest.fixture
def store(tmp_path):
    return ConfigStore(tmp_path / "meter.toml", locked=lambda _cfg: False)


@pytest.mark.parametrize("changes,message", [
    ({"snmp": {"enabled": True, "port": 47808}, "bacnet": {"enabled": True}},
     r"BACnet/IP and SNMP both listen on UDP port 47808"),
    ({"snmp": {"user": [{"name": "ops"}, {"name": "ops"}]}}, r"names a user twice"),
    ({"snmp": {"user": [{"name": "ops"}], "destination": [{"version": "v3", "user": "nobody"}]}},
     r"is v3 and names user 'nobody', which is not a \[\[snmp.user\]\] \(ops\)"),
    ({"snmp": {"enterprise_oid": "1.3.6.1.2.1"}}, r"enterprise_oid"),
    ({"snmp": {"user": [{"name": "ops", "auth": "MD5"}]}}, r"'MD5' is not one of the allowed values"),
])
def test_inconsistent_snmp_settings_are_refused_when_set(store, changes, message):
    with pytest.raises(ConfigError, match=message):
        store.save(changes, user="t")


def test_snmp_beside_the_other_protocols_on_its_own_port_is_accepted(store):
    store.save({"snmp": {"enabled": True, "port": 161, "user": [{"name": "ops"}],
                         "destination": [{"address": "192.0.2.7", "version": "v3", "user": "ops"},
                                         {"address": "192.0.2.8", "version": "v2c", "type": "inform"}]},
                "bacnet": {"enabled": True}}, user="t")
    assert store.load()["snmp"].destination[1].type == "inform"


def test_the_engine_id_is_made_once_and_the_boots_count_each_start(tmp_path):
    first, boots = start_engine(tmp_path, 32473)
    assert boots == 1 and first[:5] == bytes.fromhex("80007ed905") and len(first) == 13
    again, boots = start_engine(tmp_path, 32473)
    assert again == first and boots == 2
    assert json.loads((tmp_path / "snmp" / "engine.json").read_text()) == {"engine_id": first.hex(), "boots": 2}
    other, _ = start_engine(tmp_path / "other", 32473)
    assert other != first


def test_secrets_are_drawn_once_kept_owner_only_and_replaced_only_with_enough(tmp_path):
    secrets = SecretStore(tmp_path)
    community = secrets.community()
    auth, priv = secrets.user("ops")
    assert len(community) >= 20 and len(auth) >= 24 and auth != priv
    assert (secrets.community(), secrets.user("ops")) == (community, (auth, priv))
    assert secrets.community("configured") == "configured"
    assert (tmp_path / "snmp" / "secrets.json").stat().st_mode & 0o777 == 0o600
    assert SecretStore(tmp_path / "other").community() != community
    with pytest.raises(ConfigError, match="at least 8"):
        secrets.set("ops.auth", "short")
    with pytest.raises(ConfigError, match="write community, USER.auth or USER.priv"):
        secrets.set("ops.key", "long enough secret")
    secrets.set("ops.priv", "a new privacy passphrase")
    assert secrets.user("ops") == (auth, "a new privacy passphrase")
