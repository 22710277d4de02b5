"""A C extension built from another version of its source is noticed at start, and the metrology kernels
fall back to their numpy reference."""
from __future__ import annotations

import importlib
import shutil
import sys

import pytest

from firmware import extensions
from metrology import _kernels

ckernels = pytest.importorskip("metrology._kernels._ckernels", reason="the C kernels are not built here")


def _copy_of_the_built_kernels(tmp_path, source_text: bytes):
    pkg = tmp_path / "kernelcopy"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    shutil.copy(ckernels.__file__, pkg / ckernels.__file__.rsplit("/", 1)[1])
    here = extensions.Path(ckernels.__file__).parent
    for part in here.iterdir():                     # the extension's other C files, as they are
        if part.suffix in (".c", ".h") and part.name != "_ckernels.c":
            shutil.copy(part, pkg / part.name)
    (pkg / "_ckernels.c").write_bytes(source_text)
    sys.path.insert(0, str(tmp_path))
    importlib.invalidate_caches()
    return "kernelcopy._ckernels"


def test_the_built_extensions_match_their_sources():
    assert extensions.check() == []
    assert extensions.source_digest(
        extensions.Path(ckernels.__file__).with_name("_ckernels.c")) == ckernels.SOURCE_SHA256


def test_an_edited_source_makes_the_built_module_stale(tmp_path):
    source = extensions.Path(ckernels.__file__).with_name("_ckernels.c").read_bytes()
    name = _copy_of_the_built_kernels(tmp_path, source + b"\n/* edited after the build */\n")
    try:
        stale = extensions.stale_module(name, "_ckernels.c")
        assert stale is not None and "built from another version of _ckernels.c" in str(stale)
        assert "make venv" in str(stale)
        (tmp_path / "kernelcopy" / "_ckernels.c").write_bytes(source)
        assert extensions.stale_module(name, "_ckernels.c") is None
        # a part of the extension beside its own file: a header edited, or a C file added, is another source
        (tmp_path / "kernelcopy" / "part.h").write_text("/* a header the kernels include */\n")
        stale = extensions.stale_module(name, "_ckernels.c")
        assert stale is not None and "or of the C files beside it" in str(stale)
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop(name, None)
        sys.modules.pop("kernelcopy", None)


def test_stale_kernels_are_replaced_by_the_reference(monkeypatch):
    for attr in ("BACKEND", "BACKEND_NOTE", *_kernels.KERNELS):
        monkeypatch.setattr(_kernels, attr, getattr(_kernels, attr))
    monkeypatch.setattr(extensions, "EXTENSIONS", {"metrology._kernels._ckernels": "_ckernels.c"})
    monkeypatch.setattr(ckernels, "SOURCE_SHA256", "0" * 64)
    found = extensions.check()
    assert [s.module for s in found] == ["metrology._kernels._ckernels"]
    assert _kernels.BACKEND == "numpy" and "stale" in _kernels.BACKEND_NOTE
    assert all(getattr(_kernels, k) is getattr(_kernels.reference, k) for k in _kernels.KERNELS)
