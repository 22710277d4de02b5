"""The meter's configuration: schema discovered from ``firmware.config.sections``, atomic store."""
from __future__ import annotations

import importlib
import pkgutil
from functools import lru_cache

from firmware.config.schema import Config, ConfigSection, Schema, Section

GENERATOR = "make docs (python -m tools.gendocs)"

# Sections the running meter applies by restarting the services that read them at start, whichever interface
# saved the change (BACnet, the web): the acquisition sets the chip up for [metrology] system_type and
# nominal_frequency, so the chip's wiring follows metrology's.
RESTARTS_FOR = {"metrology": ("acquisition", "metrology"), "revenue": ("metrology",)}


@lru_cache(maxsize=1)
def meter_schema() -> Schema:
    from firmware.config import sections as package

    found: list[Section] = []
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: (i.name != "core", i.name)):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        found.extend(getattr(module, "SECTIONS", []))
    return Schema(found, what="config")


__all__ = ["Config", "ConfigSection", "Schema", "meter_schema", "GENERATOR", "RESTARTS_FOR"]
