"""The running meter: supervisor, IPC, configuration, storage and services."""
import json as _json
import os as _os
from importlib import metadata as _metadata
from pathlib import Path as _Path


def _version() -> str:
    # Running from an installed A/B slot (the boot guard sets METER_SLOT): the slot's signed manifest is
    # the truth, so the health check sees the version it just installed.
    if _os.environ.get("METER_SLOT"):
        manifest = _Path(__file__).resolve().parents[2] / "manifest.json"
        try:
            return str(_json.loads(manifest.read_text())["version"])
        except (OSError, ValueError, KeyError):
            pass
    try:
        return _metadata.version("openmeter")
    except _metadata.PackageNotFoundError:  # a source tree that was never installed
        return "0.0.0+source"


__version__ = _version()
