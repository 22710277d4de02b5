"""C extensions, built by the normal install where a C compiler exists.

Each extension is optional: without a compiler the install still succeeds and the Python
code falls back to its numpy/pure-Python reference, saying so once at start-up.
"""
from setuptools import Extension, setup

EXTENSIONS = [
    Extension("firmware.ipc._atomics", ["firmware/ipc/_atomics.c"], optional=True),
    Extension("hal._rtloop", ["hal/_rtloop.c"], extra_compile_args=["-O2"], libraries=["pthread", "m"],
              optional=True),
    Extension("metrology._kernels._ckernels", ["metrology/_kernels/_ckernels.c"],
              extra_compile_args=["-O3"], optional=True),
]

setup(ext_modules=EXTENSIONS)
