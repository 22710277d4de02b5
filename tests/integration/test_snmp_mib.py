"""OPENMETER-MIB read by tools that are not the meter's: libsmi's smilint finds nothing to say about it (at its
most talkative level), net-snmp's snmptranslate puts each object where the agent serves it, and snmpget with the
MIB loaded shows the agent's scaled integers as the catalogue's values with their units."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from firmware.comms.snmp import ber, mib, mibtext
from firmware.comms.snmp.notify import NOTIFICATIONS, notification_oid
from firmware.config.sections.snmp import DEFAULT_ENTERPRISE_OID
from tests.integration.modbus_support import VALUES
from tests.integration.snmp_support import SnmpMeter, instance, need, tool_env

BASE_MIBS = Path(__file__).resolve().parent.parent / "data" / "snmp"     # SNMPv2-SMI, -TC, -CONF
ENTERPRISES = (DEFAULT_ENTERPRISE_OID, "1.3.6.1.4.1.99999.7.3")


def _write(tmp_path: Path, enterprise: str) -> Path:
    path = tmp_path / f"mib-{enterprise.replace('.', '-')}" / "OPENMETER-MIB"
    path.parent.mkdir()
    path.write_text(mibtext.render(ber.oid(enterprise)))
    return path


@pytest.mark.parametrize("enterprise", ENTERPRISES)
def test_smilint_accepts_the_mib(tmp_path, enterprise):
    need("smilint", "smitools")
    path = _write(tmp_path, enterprise)
    preload = [arg for name in ("SNMPv2-SMI", "SNMPv2-TC", "SNMPv2-CONF") for arg in ("-p", str(BASE_MIBS / name))]
    proc = subprocess.run(["smilint", "-l", "6", *preload, str(path)], capture_output=True, text=True, timeout=60)
    ours = [line for line in (proc.stdout + proc.stderr).splitlines() if line.startswith(str(path))]
    assert ours == [], "\n".join(ours)


@pytest.mark.parametrize("enterprise", ENTERPRISES)
def test_snmptranslate_places_every_object_where_the_agent_serves_it(tmp_path, enterprise):
    need("snmptranslate", "snmp")
    path = _write(tmp_path, enterprise)
    objects = mib.meter_objects(ber.oid(enterprise))
    names = [f"OPENMETER-MIB::{o.descriptor}" for o in objects] + [f"OPENMETER-MIB::{n}" for n in NOTIFICATIONS]
    proc = subprocess.run(["snmptranslate", "-M", f"{BASE_MIBS}:{path.parent}", "-m", "OPENMETER-MIB", "-On",
                           *names], capture_output=True, text=True, timeout=60, env=tool_env(tmp_path))
    assert proc.returncode == 0 and not proc.stderr, proc.stderr
    got = [line for line in proc.stdout.splitlines() if line]
    want = [o.oid for o in objects] + [notification_oid(ber.oid(enterprise), n) for n in NOTIFICATIONS]
    assert got == ["." + ber.oid_text(o) for o in want]


def test_snmpget_with_the_mib_shows_the_catalogues_values_and_units(tmp_path):
    path = _write(tmp_path, DEFAULT_ENTERPRISE_OID)
    meter = SnmpMeter(tmp_path)
    try:
        need("snmpget", "snmp")
        proc = subprocess.run(["snmpget", *meter.v3(), "-M", f"{BASE_MIBS}:{path.parent}", "-m", "OPENMETER-MIB",
                               meter.target, instance("v_an"), instance("i_a"), instance("wh_del_minus_rec")],
                              capture_output=True, text=True, timeout=30, env=tool_env(tmp_path))
        assert proc.returncode == 0, proc.stderr
        shown = dict(re.findall(r"^OPENMETER-MIB::(\w+)\.0 = \w+: (.*)$", proc.stdout, re.M))
        assert shown["meterVAn"] == f"{VALUES['v_an']:.2f} V"
        assert shown["meterIA"] == f"{VALUES['i_a']:.3f} A"
        assert shown["meterWhDelMinusRec"] == f"{VALUES['wh_del_minus_rec'] / 1000:.1f} kWh"
    finally:
        meter.close()
