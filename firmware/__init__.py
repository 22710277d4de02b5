"""The running meter: supervisor, IPC, configuration, storage and services."""
import json as _json
import os as _os
from importlib import metadata as _metadata
from pathlib import Path as _Path

# Every process of the meter runs numpy on one thread, before numpy is first imported: OpenBLAS would start
# a thread per core, each with a buffer of its own (docs/memory.md), for matrix products the meter does not
# do at a size where threads pay; and a service forked from the supervisor inherits no threads.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
    _os.environ.setdefault(_var, "1")


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
