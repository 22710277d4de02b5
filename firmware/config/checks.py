"""Checks of a whole configuration that its owners make at start, run at save and validate time too, so a
setting the meter would reject when it starts is refused when it is set (``meter config set|validate``).

Each check is ``module:function`` taking the loaded ``Config`` and raising ``ConfigError``; they are imported
only when run, so the configuration package does not import the services that own the settings.
"""
from __future__ import annotations

import importlib

from firmware.config.schema import Config

CHECKS = (
    "firmware.revenue.settings:from_config",     # TOU calendar, holidays, load-profile channels, demand
    "firmware.io.build:check",                   # setpoint alarms (points, nominals), totalizers
    "firmware.recorder.datarec:check",           # data recorder channels
    "firmware.comms.modbus.regmap:check_user_map",  # the Modbus user map: points, formats, free addresses
    "firmware.config.ports:check",               # one protocol per port and serial line; one network path open
    "firmware.config.sections.pq:check",         # ripple-control frequencies
    "firmware.config.sections.snmp:check",       # SNMP users and notification destinations
)


def check_whole(config: Config) -> None:
    for entry in CHECKS:
        module, _, func = entry.partition(":")
        getattr(importlib.import_module(module), func)(config)
