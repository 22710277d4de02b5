"""The SHA-256 of the legally relevant code: what determines a billed value, shown on the nameplate.

Legal metrology (WELMEC 7.2, OIML D 31) asks that the software which measures and registers be identified by a
checksum the user can read on the meter, and that it change whenever that software changes. Here that is the
metrology package, the ADE9000 driver and its register map, the C read loop, the calibration and the revenue
registers (``LEGALLY_RELEVANT``). The hash covers each file's path and SHA-256, in path order, so it does not
depend on file times or the order a directory lists its files; configuration is not code and has its own
version. Compiled extensions are left out: they are built from the ``.c`` files counted here.
"""
from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LEGALLY_RELEVANT = ("metrology", "hal/ade9000.py", "hal/ade9000_map.toml", "hal/ade9000_stream.py", "hal/regmap.py",
                    "hal/_rtloop.c", "hal/rtloop.py", "hal/calibration.py", "firmware/revenue")
SUFFIXES = (".py", ".c", ".h", ".toml")
SHORT_HEX = 16                     # shown on the nameplate; docs/io.md says how to get the full value


def legal_files(root: Path = ROOT) -> list[Path]:
    out: list[Path] = []
    for rel in LEGALLY_RELEVANT:
        path = root / rel
        if path.is_dir():
            out += [p for p in path.rglob("*") if p.is_file() and p.suffix in SUFFIXES and "__pycache__" not in p.parts]
        elif path.is_file():
            out.append(path)
    return sorted(out, key=lambda p: p.relative_to(root).as_posix())


def legal_hash(root: Path = ROOT) -> str:
    """The full hex SHA-256 of the legally relevant code under ``root``."""
    digest = hashlib.sha256()
    for path in legal_files(root):
        digest.update(f"{path.relative_to(root).as_posix()}\0{hashlib.sha256(path.read_bytes()).hexdigest()}\n"
                      .encode())
    return digest.hexdigest()


@lru_cache(maxsize=1)
def running_code_hash() -> str:
    """The hash of the code this process runs (read once: the files do not change under a running meter)."""
    return legal_hash(ROOT)
