"""The C extensions and whether each was built from the source beside it.

``setup.py`` compiles the SHA-256 of each extension's C sources (every ``.c`` and ``.h`` file of its folder) into
the module (``SOURCE_SHA256``). A
module whose digest differs from its source's was built before the source was last edited (a stale
``.so`` left in the tree after editing the C file without ``make``): its code may no longer match what the
Python side expects. ``check()`` names each such module at start; the metrology kernels then run on their
numpy reference (same results) until the extension is rebuilt with ``make venv``.
"""
from __future__ import annotations

import hashlib
import importlib
from dataclasses import dataclass
from pathlib import Path

# module -> its own C file, beside the module (the folder's other C files are built into it too)
EXTENSIONS = {
    "firmware.ipc._atomics": "_atomics.c",
    "hal._rtloop": "_rtloop.c",
    "metrology._kernels._ckernels": "_ckernels.c",
}


@dataclass(frozen=True)
class Stale:
    module: str
    source: Path
    why: str

    def __str__(self) -> str:
        return f"{self.module}: {self.why}; rebuild it with `make venv` (or `pip install -e .`)"


def source_digest(path: Path) -> str:
    """The digest ``setup.py`` builds into the extension whose own C file is ``path``: every ``.c`` and ``.h`` file of
    its folder, by name, each name then its bytes."""
    files = sorted(p for p in path.parent.iterdir() if p.suffix in (".c", ".h"))
    return hashlib.sha256(b"".join(p.name.encode() + b"\0" + p.read_bytes() for p in files)).hexdigest()


def stale_module(module_name: str, source_name: str) -> Stale | None:
    """Why ``module_name`` does not match its source, or None when it does (or is not built, or no source ships)."""
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None                             # not built: the caller's fallback says so
    source = Path(module.__file__ or "").with_name(source_name)
    if not source.exists():
        return None                             # an installed image without sources: nothing to compare
    built = getattr(module, "SOURCE_SHA256", "")
    if not built:
        return Stale(module_name, source, f"built without the digest of {source.name} (an older build)")
    if built != source_digest(source):
        return Stale(module_name, source, f"built from another version of {source.name} or of the C files beside it")
    return None


def check() -> list[Stale]:
    """Every stale extension; the metrology kernels are switched to their numpy reference when theirs is."""
    from metrology import _kernels

    found = [s for name, src in EXTENSIONS.items() if (s := stale_module(name, src)) is not None]
    for s in found:
        if s.module == "metrology._kernels._ckernels":
            _kernels.use_reference(str(s))
    return found
