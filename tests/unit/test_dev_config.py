"""`make run`'s development settings (Makefile ``dev-config``) reach a configuration saved before the first
`make run`, leave what was set by hand alone, and save nothing when every one is already in place."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from firmware.config.store import ConfigStore


def _make_dev_config(repo: Path, config: Path, env: dict[str, str]) -> None:
    # STAMP= : the venv the tests run in is the one to use, not one make would (re)install first
    subprocess.run(["make", "-s", "-C", str(repo), "dev-config", f"RUN_CONFIG={config}", "STAMP=",
                    f"BIN={Path(sys.executable).parent}"], check=True, env=env, capture_output=True, timeout=120)


def _meter(args: list[str], env: dict[str, str]) -> None:
    subprocess.run([sys.executable, "-m", "firmware.cli", *args], check=True, env=env, capture_output=True)


def test_dev_settings_reach_a_file_saved_before_the_first_run(repo, subprocess_env, tmp_path):
    config = tmp_path / "meter.toml"
    _meter(["config", "set", "--config", str(config), "--user", "me", "metrology.nominal_voltage=240",
            "bacnet.ip_port=47900"], subprocess_env)
    _make_dev_config(repo, config, subprocess_env)
    cfg = ConfigStore(config).load()
    assert cfg["modbus"].tcp_port == 5020 and cfg["modbus"].bind_address == "127.0.0.1"
    assert cfg["web"].https_port == 8443 and cfg["bacnet"].enabled
    assert cfg["snmp"].enabled and cfg["snmp"].port == 1161 and cfg["snmp"].bind_address == "127.0.0.1"
    assert cfg["metrology"].nominal_voltage == 240 and cfg["bacnet"].ip_port == 47900   # set by hand: kept
    assert cfg.version == 2
    _make_dev_config(repo, config, subprocess_env)
    assert ConfigStore(config).load().version == 2                                      # nothing left to set
