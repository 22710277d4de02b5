"""The new slot's venv shares the running slot's installed wheels where they are the same; only what differs
is installed, and neither slot depends on the other being kept.

Real wheels, built here offline from one-module projects, stand in for the downloaded ones; the slots are
made by the real installer and run by their own venv's Python.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from firmware.upgrade.guard import Guard
from firmware.upgrade.installer import provision
from firmware.upgrade.venv import installed, site_packages
from tests.integration.upgrade_env import UpgradeEnv, make_env


def wheel(tmp_path, name: str, version: str, answer: int):
    """A wheel of the distribution ``name`` whose module's ANSWER is ``answer``."""
    project = tmp_path / "projects" / f"{name}-{version}"
    (project / name).mkdir(parents=True)
    (project / name / "__init__.py").write_text(f"ANSWER = {answer}\n")
    (project / name / "more.py").write_text(f"def twice():\n    return 2 * {answer}\n")
    (project / "pyproject.toml").write_text('[build-system]\nrequires = ["setuptools"]\n'
                                            'build-backend = "setuptools.build_meta"\n'
                                            f'[project]\nname = "{name}"\nversion = "{version}"\n')
    out = tmp_path / "built"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "-w", str(out), str(project)], check=True, timeout=300, capture_output=True)
    return next(out.glob(f"{name}-{version}-*.whl"))


def wheel_dir(tmp_path, label: str, wheels) -> str:
    d = tmp_path / f"deps-{label}"
    d.mkdir()
    for w in wheels:
        shutil.copy(w, d / w.name)
    return str(d)


@pytest.fixture
def built(tmp_path):
    return {k: wheel(tmp_path, *k) for k in (("alpha", "1.0", 1), ("beta", "1.0", 10), ("gamma", "1.0", 100),
                                             ("alpha", "2.0", 2))}


@pytest.fixture
def env(tmp_path, built) -> UpgradeEnv:
    """A meter provisioned with 0.1.0, which bundles alpha 1.0, beta 1.0 and gamma 1.0 (installed with pip)."""
    env = make_env(tmp_path / "meter", provision_version=None)
    deps = wheel_dir(tmp_path, "0.1.0", [built["alpha", "1.0", 1], built["beta", "1.0", 10],
                                         built["gamma", "1.0", 100]])
    provision(env.settings, env.image("0.1.0", deps=deps))
    return env


def answers(env: UpgradeEnv, slot: str, modules=("alpha", "beta", "gamma")) -> dict[str, object]:
    """Each module's ANSWER and twice() as the slot's own Python imports them (None: not importable)."""
    code = ("import importlib, json, sys\nout = {}\nfor m in sys.argv[1:]:\n    try:\n"
            "        out[m] = [importlib.import_module(m).ANSWER, importlib.import_module(m + '.more').twice()]\n"
            "    except ImportError:\n        out[m] = None\nprint(json.dumps(out))\n")
    python = env.layout.slot_path(slot) / "venv" / "bin" / "python"
    done = subprocess.run([str(python), "-c", code, *modules], capture_output=True, text=True, timeout=120,
                          cwd="/")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def dist_files(env: UpgradeEnv, slot: str, name: str) -> dict[str, os.stat_result]:
    """Every file of one installed distribution (its package and .dist-info), by path, with its stat."""
    site = site_packages(env.layout.slot_path(slot) / "venv")
    assert site is not None
    out = {}
    for top in (site / name, installed(site)[name]):
        for p in top.rglob("*"):
            if p.is_file():
                out[p.relative_to(site).as_posix()] = p.stat()
    return out


def shared(env: UpgradeEnv, name: str) -> bool:
    """Every file of ``name`` in slot b is the very file (inode) slot a has."""
    a, b = dist_files(env, "a", name), dist_files(env, "b", name)
    return a.keys() == b.keys() and all(a[k].st_ino == b[k].st_ino for k in a)


def deps_rows(env: UpgradeEnv, attempt: str) -> list[str]:
    return [r["message"] for r in env.installer().log.entries(attempt) if r["event"] == "step"]


def test_same_dependencies_are_shared_with_the_running_slot_not_reinstalled(env, tmp_path, built):
    assert answers(env, "a") == {"alpha": [1, 2], "beta": [10, 20], "gamma": [100, 200]}
    deps = wheel_dir(tmp_path, "0.2.0", [built["alpha", "1.0", 1], built["beta", "1.0", 10],
                                         built["gamma", "1.0", 100]])
    result = env.installer().install(env.image("0.2.0", deps=deps))
    assert result["slot"] == "b"
    assert deps_rows(env, result["attempt"]) == ["extract", "deps", "verify", "place", "arm", "switch"]
    # nothing installed again: every file of every dependency is the running slot's own (same inode)
    for name in ("alpha", "beta", "gamma"):
        assert shared(env, name), name
    # and the new slot runs them with its own interpreter
    assert answers(env, "b") == {"alpha": [1, 2], "beta": [10, 20], "gamma": [100, 200]}
    assert env.layout.verify("b") == [] and env.layout.verify("a") == []


def test_a_changed_wheel_alone_is_installed_and_a_dropped_one_is_left_out(env, tmp_path, built):
    # alpha 1.0 -> 2.0, beta the same, gamma no longer bundled
    deps = wheel_dir(tmp_path, "0.2.0", [built["alpha", "2.0", 2], built["beta", "1.0", 10]])
    result = env.installer().install(env.image("0.2.0", deps=deps))
    assert result["slot"] == "b"
    assert answers(env, "b") == {"alpha": [2, 4], "beta": [10, 20], "gamma": None}
    assert shared(env, "beta")
    site_b = site_packages(env.layout.slot_path("b") / "venv")
    assert site_b is not None
    assert sorted(p.name for p in site_b.glob("*.dist-info")) == ["alpha-2.0.dist-info", "beta-1.0.dist-info"]
    a_files, b_files = dist_files(env, "a", "alpha"), dist_files(env, "b", "alpha")
    assert not {f.st_ino for f in a_files.values()} & {f.st_ino for f in b_files.values()}
    assert not (site_b / "gamma").exists()
    # the running slot is untouched
    assert answers(env, "a") == {"alpha": [1, 2], "beta": [10, 20], "gamma": [100, 200]}
    assert env.layout.verify("a") == []


def test_either_slot_removed_leaves_the_other_whole(env, tmp_path, built):
    deps = wheel_dir(tmp_path, "0.2.0", [built["alpha", "1.0", 1], built["beta", "1.0", 10],
                                         built["gamma", "1.0", 100]])
    assert env.installer().install(env.image("0.2.0", deps=deps))["slot"] == "b"
    assert shared(env, "alpha")
    guard = Guard(env.settings, command=lambda p: [], probe=lambda: None)
    # fallback, then the same version again: slot b's tree (sharing slot a's files) is replaced
    guard.rollback(env.layout.trial(), "test: not healthy")
    assert env.installer().install(env.image("0.2.0", deps=deps))["slot"] == "b"
    assert answers(env, "a") == answers(env, "b") == {"alpha": [1, 2], "beta": [10, 20], "gamma": [100, 200]}
    # commit b, then install 0.3.0 into slot a: a's tree is replaced, sharing b's files
    guard.commit(env.layout.trial())
    assert env.installer().install(env.image("0.3.0", deps=deps))["slot"] == "a"
    guard.commit(env.layout.trial())
    assert answers(env, "a") == answers(env, "b") == {"alpha": [1, 2], "beta": [10, 20], "gamma": [100, 200]}
    assert env.layout.verify("a") == [] and env.layout.verify("b") == []


KILL_AT_DEPS = """
import sys
from firmware.upgrade.installer import Installer
from firmware.upgrade.settings import UpgradeSettings
installer = Installer(UpgradeSettings.under(sys.argv[1]), progress=lambda s: print(s, flush=True))
installer.install(sys.argv[2], user="kill-test")
print("done", flush=True)
"""


@pytest.mark.parametrize("delay_s", [0.0, 0.02, 0.1])
def test_install_killed_while_sharing_the_running_slots_files_leaves_it_whole_and_a_retry_shares(env, tmp_path, built, delay_s):
    deps = wheel_dir(tmp_path, "0.2.0", [built["alpha", "2.0", 2], built["beta", "1.0", 10],
                                         built["gamma", "1.0", 100]])
    image = env.image("0.2.0", deps=deps)
    proc = subprocess.Popen([sys.executable, "-c", KILL_AT_DEPS, str(env.settings.root), str(image)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.strip() == "deps":
            time.sleep(delay_s)
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    proc.stdout.close()
    Guard(env.settings, command=lambda p: [], probe=lambda: None).recover()
    layout = env.layout
    assert (layout.current(), layout.good(), layout.trial()) == ("a", "a", None)
    assert not [p for p in layout.slots_dir.iterdir() if p.name.startswith(".")]
    assert layout.verify("a") == []
    assert answers(env, "a") == {"alpha": [1, 2], "beta": [10, 20], "gamma": [100, 200]}
    # an uninterrupted install after it
    assert env.installer().install(image)["slot"] == "b"
    assert answers(env, "b") == {"alpha": [2, 4], "beta": [10, 20], "gamma": [100, 200]}
    assert shared(env, "beta") and shared(env, "gamma")
