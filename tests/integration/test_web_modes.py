"""[web] mode: which ports the web service opens (https-redirect: both; https-only: HTTPS alone; disabled: the
service is not started), and a port that cannot be had is refused with the option to change."""
from __future__ import annotations

import socket
from pathlib import Path

import pytest

from firmware.config import meter_schema
from firmware.ipc.names import instance_name
from firmware.service import ServiceContext
from firmware.services.registry import enabled_services
from firmware.services.web import WebService
from hal.errors import ConfigError
from tests.support.web_meter import free_port


def _service(tmp_path: Path, **web) -> WebService:
    config = meter_schema().load({"meter": {"data_dir": str(tmp_path / "var"), "run_dir": str(tmp_path / "run")},
                                  "web": {"bind_address": "127.0.0.1", **web}})
    ctx = ServiceContext("web", config, tmp_path / "meter.toml", Path("boards/sim.toml"), tmp_path / "run",
                         tmp_path / "var", instance_name(tmp_path / "run"))
    return WebService(ctx)


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.parametrize("mode, http_open", [("https-redirect", True), ("https-only", False)])
def test_mode_decides_the_ports(tmp_path, mode, http_open):
    https, http = free_port(), free_port()
    service = _service(tmp_path, mode=mode, https_port=https, http_port=http)
    try:
        service.setup()
        assert service.endpoints[0] == f"https://127.0.0.1:{https}/"
        assert _listening(https) and _listening(http) == http_open
        assert (tmp_path / "var" / "web" / "selfsigned.pem").exists()   # made on first start
    finally:
        service.teardown()


def test_disabled_web_is_not_started():
    config = meter_schema().load({"web": {"mode": "disabled"}})
    assert "web" not in [s.name for s in enabled_services(config)]
    assert "web" in [s.name for s in enabled_services(meter_schema().defaults())]


def test_a_port_in_use_is_refused_naming_the_option(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        service = _service(tmp_path, mode="https-only", https_port=taken.getsockname()[1])
        try:
            with pytest.raises(ConfigError, match=r"\[web\] https_port\): another program"):
                service.setup()
        finally:
            service.teardown()
