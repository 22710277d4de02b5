"""The meter's DLMS secrets are its own, and its invocation counter never hands out a value twice, whatever
moment a restart or a kill comes at (the integration side, kill -9 of the comms service, is
tests/integration/test_dlms.py)."""
from __future__ import annotations

import pytest

from firmware.comms.dlms import security
from firmware.comms.dlms.keys import InvocationCounter, load_keys
from hal.errors import ConfigError


def test_each_meter_draws_its_own_keys_and_keeps_them(tmp_path):
    a, b = load_keys(tmp_path / "a"), load_keys(tmp_path / "b")
    assert a.ek != b.ek and a.ak != b.ak and a.lls_password != b.lls_password and a.system_title != b.system_title
    assert load_keys(tmp_path / "a") == a
    assert (tmp_path / "a" / "dlms" / "keys.json").stat().st_mode & 0o077 == 0
    with pytest.raises(ConfigError, match="no DLMS keys"):
        load_keys(tmp_path / "c", create=False)


def test_invocation_counter_never_repeats_across_restarts(tmp_path):
    seen: set[int] = set()
    for run in range(5):
        counter = InvocationCounter(tmp_path, reserve=7)
        for _ in range(run * 3 + 1):            # stopped at any point of a reserved block
            ic = counter.next()
            assert ic not in seen and all(ic > s for s in seen)
            seen.add(ic)
    (tmp_path / "dlms" / "invocation_counter").write_text("garbage")
    with pytest.raises(ConfigError, match="never"):
        InvocationCounter(tmp_path)


def test_gcm_and_gmac_round_trip_and_refuse_a_changed_byte():
    ek, ak, title = bytes(range(16)), bytes(range(16, 32)), b"ABCDEFGH"
    sealed = security.seal(security.SC_AUTH_ENC, title, 5, ek, ak, b"hello")
    assert security.open_sealed(security.SC_AUTH_ENC, title, 5, ek, ak, sealed) == b"hello"
    with pytest.raises(security.SecurityError):
        security.open_sealed(security.SC_AUTH_ENC, title, 6, ek, ak, sealed)
    reply = security.hls_reply(title, 9, ek, ak, b"challenge")
    assert security.hls_check(reply, title, ek, ak, b"challenge") == 9
    with pytest.raises(security.SecurityError):
        security.hls_check(reply, title, ek, bytes(16), b"challenge")
