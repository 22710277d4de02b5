"""C extensions, built by the normal install where a C compiler exists.

Each extension is optional: without a compiler the install still succeeds and the Python
code falls back to its numpy/pure-Python reference, saying so once at start-up.

Each extension carries the SHA-256 of the source it was built from (``SOURCE_SHA256``), so that a
module built from an older source is noticed at start (``firmware.extensions``).
"""
import hashlib
from pathlib import Path

from setuptools import Extension, setup


def extension(name: str, source: str, **kw) -> Extension:
    digest = hashlib.sha256((Path(__file__).resolve().parent / source).read_bytes()).hexdigest()
    return Extension(name, [source], define_macros=[("SOURCE_SHA256", f'"{digest}"')], optional=True, **kw)


EXTENSIONS = [
    extension("firmware.ipc._atomics", "firmware/ipc/_atomics.c"),
    extension("hal._rtloop", "hal/_rtloop.c", extra_compile_args=["-O2"], libraries=["pthread", "m"]),
    extension("metrology._kernels._ckernels", "metrology/_kernels/_ckernels.c",
              extra_compile_args=["-O3", "-ffp-contract=off"]),
]

setup(ext_modules=EXTENSIONS)
