"""C extensions, built by the normal install where a C compiler exists.

Each extension is optional: without a compiler the install still succeeds and the Python
code falls back to its numpy/pure-Python reference, saying so once at start-up.

Each extension is the C files of one folder, its module's own file first. It carries the SHA-256 of those files
(``SOURCE_SHA256``: every ``.c`` and ``.h`` file of the folder, by name, each name then its bytes), so that a module
built from an older source is noticed at start (``firmware.extensions.source_digest`` computes the same).
"""
import hashlib
from pathlib import Path

from setuptools import Extension, setup


ROOT = Path(__file__).resolve().parent


def extension(name: str, source: str, macros: list[tuple[str, str]] | None = None, **kw) -> Extension:
    main = ROOT / source
    files = sorted(p for p in main.parent.iterdir() if p.suffix in (".c", ".h"))
    digest = hashlib.sha256(b"".join(p.name.encode() + b"\0" + p.read_bytes() for p in files)).hexdigest()
    sources = [source] + [str(p.relative_to(ROOT)) for p in files if p.suffix == ".c" and p != main]
    return Extension(name, sources, depends=[str(p.relative_to(ROOT)) for p in files],
                     define_macros=[("SOURCE_SHA256", f'"{digest}"'), *(macros or [])], optional=True, **kw)


def numpy_api() -> dict:
    """The metrology kernels read numpy arrays through numpy's C API where numpy (the pinned version, whose headers
    are the same for the target) is there to build with; without it, through the buffer protocol."""
    try:
        import numpy
    except ImportError:
        return {}
    return {"macros": [("KERNELS_NUMPY_API", "1")], "include_dirs": [numpy.get_include()]}


EXTENSIONS = [
    extension("firmware.ipc._atomics", "firmware/ipc/_atomics.c"),
    extension("hal._rtloop", "hal/_rtloop.c", extra_compile_args=["-O2"], libraries=["pthread", "m"]),
    extension("metrology._kernels._ckernels", "metrology/_kernels/_ckernels.c",
              extra_compile_args=["-O3", "-ffp-contract=off"], **numpy_api()),
]

setup(ext_modules=EXTENSIONS)
