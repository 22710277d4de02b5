"""The meter's own packages stand on their own: nothing under firmware/, hal/ or metrology/ imports the host tools
(tools/), by an import statement or by a module name handed to importlib; the `meter` command works from a
firmware slot: the packages on PYTHONPATH, no tools/ and no installed distribution's metadata; and no two of the
meter's modules import each other, directly or round a loop."""
from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
METER_PACKAGES = ("firmware", "hal", "metrology")
MODULE_NAME = re.compile(r"tools(\.[A-Za-z_]\w*)*")


def _imported_names(tree: ast.AST) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.lineno, node.module))
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if name in ("import_module", "__import__", "find_spec"):
                out.append((node.lineno, node.args[0].value))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and MODULE_NAME.fullmatch(node.value) \
                and "." in node.value:
            out.append((node.lineno, node.value))           # a module name kept for importlib (a table of them)
    return out


def _tools_imports(root: Path) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        for line, name in _imported_names(ast.parse(path.read_text(), str(path))):
            if name == "tools" or name.startswith("tools."):
                found.append(f"{path.relative_to(REPO)}:{line}: {name}")
    return found


def test_the_scan_sees_every_form_of_import(tmp_path):
    (tmp_path / "m.py").write_text("import tools.a\nfrom tools import b\n\n\ndef f():\n    from tools.c import d\n"
                                   "    importlib.import_module('tools.e')\n    __import__('tools')\n"
                                   "    import toolsmith\nCOMMANDS = ('tools.f', 'tools are here')\n")
    names = [n for _, n in _imported_names(ast.parse((tmp_path / "m.py").read_text()))]
    assert sorted(names) == ["tools", "tools", "tools.a", "tools.c", "tools.e", "tools.e", "tools.f",
                            "toolsmith"]


@pytest.mark.parametrize("package", METER_PACKAGES)
def test_no_meter_package_imports_the_host_tools(package):
    assert _tools_imports(REPO / package) == []


# Run in a firmware slot's shape: the packages from a copy on PYTHONPATH, tools/ nowhere (the editable install's
# finder is taken off, and the distribution's metadata hidden, as on the device), every subcommand's --help.
SLOT_PROBE = r"""
import importlib.metadata as md, sys
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f)]
def hidden(name):
    raise md.PackageNotFoundError(name)
md.distribution = hidden
import firmware.cli as cli
parser = cli.build_parser()
sub = next(a for a in parser._actions if a.dest == "command")
assert "Host tools" not in parser.format_help(), parser.format_help()
for name in sub.choices:
    try:
        cli.build_parser().parse_args([name, "--help"])
    except SystemExit:
        pass
bad = [m for m in sys.modules if m == "tools" or m.startswith("tools.")]
foreign = [m for m, mod in sys.modules.items() if m.split(".")[0] in ("firmware", "hal", "metrology")
           and getattr(mod, "__file__", None) and not mod.__file__.startswith(sys.argv[1])]
print(sorted(sub.choices))
assert not bad and not foreign, (bad, foreign)
"""


def test_the_meter_command_runs_from_a_slot_without_tools(tmp_path):
    app = tmp_path / "app"
    for d in (*METER_PACKAGES, "boards"):
        shutil.copytree(REPO / d, app / d, ignore=shutil.ignore_patterns("__pycache__"))
    run = subprocess.run([sys.executable, "-c", SLOT_PROBE, str(app)], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120, env={"PYTHONPATH": str(app), "PATH": "/usr/bin:/bin"})
    assert run.returncode == 0, run.stderr[-3000:]
    for command in ("run", "status", "read", "do", "revenue", "replay", "image", "hil", "pq", "config"):
        assert f"'{command}'" in run.stdout


def test_meter_help_names_the_host_tools_installed_beside_it():
    from firmware.cli import build_parser, host_tools

    assert "meter-image" in host_tools()                    # [project.scripts] of this checkout's install
    assert "meter-image" in build_parser().format_help()
    from tools.image.cli import build_parser as image_parser

    help_text = image_parser().format_help()
    assert all(action in help_text for action in ("build", "keygen", "sign"))


def _module_of(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph() -> dict[str, set[str]]:
    """Module -> the meter's modules it imports (every import, lazy ones and those for type checking too)."""
    files = {_module_of(p): p for pkg in METER_PACKAGES for p in (REPO / pkg).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        targets = set()
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
            for name in names:
                while name and name not in files:
                    name = name.rpartition(".")[0]
                if name and name != module and not module.startswith(name + "."):
                    targets.add(name)        # a package's own __init__ is no loop of its modules
        graph[module] = targets
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_cycle_finder_finds_a_loop():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_two_modules_of_the_meter_import_each_other():
    """No import loop between the meter's modules, however indirect (farm-studio look draws none)."""
    assert _cycles(_import_graph()) == []
