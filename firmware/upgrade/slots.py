"""The two application slots and the pointers that choose between them.

Layout under ``[upgrade] root`` (``/opt/openmeter`` on the CM4, ``var/upgrade`` on a development
machine)::

    slots/a/  slots/b/        a complete, verified image each: manifest.json, signatures/, app/, ...
    slots/.staging-X/         an image being extracted (never booted; removed by recovery)
    slots/.trash-X/           an old slot being deleted (removed by recovery)
    current -> slots/X        the slot the boot guard starts
    good    -> slots/Y        the last slot that reported healthy; the guard itself runs from here

and under ``[upgrade] state_dir`` (data partition): ``trial.json`` (a new slot on probation),
``floor.json`` (anti-rollback floor), ``guard.pid``, ``upgrade.db`` (the upgrade log).

Pointers are symlinks replaced with rename(2), which is atomic: after a crash each names either
its old or its new slot. A slot directory only ever appears by renaming a fully written, fsync'd
and verified staging directory, so a slot that exists is complete.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from firmware.storage.atomic import atomic_write, fsync_dir
from firmware.upgrade.image import MANIFEST_NAME, Manifest, parse_manifest, parse_version

SLOTS = ("a", "b")
CURRENT, GOOD = "current", "good"


class SlotLayout:
    def __init__(self, root: str | Path, state_dir: str | Path | None = None) -> None:
        self.root = Path(root)
        self.slots_dir = self.root / "slots"
        self.state_dir = Path(state_dir) if state_dir else self.root / "state"

    # ------------------------------------------------------------------ slots

    def slot_path(self, slot: str) -> Path:
        if slot not in SLOTS:
            raise ValueError(f"slot {slot!r} is not one of {SLOTS}")
        return self.slots_dir / slot

    def staging_path(self, slot: str) -> Path:
        return self.slots_dir / f".staging-{slot}"

    def trash_path(self, slot: str) -> Path:
        return self.slots_dir / f".trash-{slot}"

    @staticmethod
    def other(slot: str) -> str:
        return SLOTS[1 - SLOTS.index(slot)]

    def manifest(self, slot: str) -> Manifest | None:
        try:
            return parse_manifest((self.slot_path(slot) / MANIFEST_NAME).read_bytes())
        except (FileNotFoundError, NotADirectoryError):
            return None
        except Exception:  # noqa: BLE001 - a damaged slot manifest is a damaged slot
            return None

    def version(self, slot: str | None) -> str | None:
        m = self.manifest(slot) if slot else None
        return m.version if m else None

    def verify(self, slot: str) -> list[str]:
        """Re-hash every file of a slot against its manifest; the list of problems (empty: intact)."""
        manifest = self.manifest(slot)
        if manifest is None:
            return [f"slot {slot} has no readable manifest"]
        base, problems = self.slot_path(slot), []
        for entry in manifest.files:
            path = base / entry.path
            digest = hashlib.sha256()
            try:
                with open(path, "rb") as f:
                    while chunk := f.read(1 << 20):
                        digest.update(chunk)
            except OSError as exc:
                problems.append(f"{entry.path}: {exc.strerror}")
                continue
            if digest.hexdigest() != entry.sha256:
                problems.append(f"{entry.path}: SHA-256 differs from the manifest")
        return problems

    def size_bytes(self, slot: str) -> int:
        total = 0
        for dirpath, _, files in os.walk(self.slot_path(slot)):
            for name in files:
                with contextlib.suppress(OSError):
                    total += os.lstat(os.path.join(dirpath, name)).st_size
        return total

    def cleanup_transient(self) -> list[str]:
        """Remove leftovers of an interrupted install (staging and trash directories)."""
        removed = []
        if self.slots_dir.is_dir():
            for p in sorted(self.slots_dir.iterdir()):
                if p.name.startswith((".staging-", ".trash-")):
                    shutil.rmtree(p, ignore_errors=True)
                    removed.append(p.name)
            if removed:
                fsync_dir(self.slots_dir)
        return removed

    def place(self, slot: str) -> None:
        """Move the verified staging directory into ``slot`` (the old content, if any, is discarded)."""
        target, trash, staging = self.slot_path(slot), self.trash_path(slot), self.staging_path(slot)
        if target.exists():
            shutil.rmtree(trash, ignore_errors=True)
            os.rename(target, trash)
            fsync_dir(self.slots_dir)
        os.rename(staging, target)
        fsync_dir(self.slots_dir)
        shutil.rmtree(trash, ignore_errors=True)

    # ------------------------------------------------------------------ pointers

    def _read_link(self, name: str) -> str | None:
        try:
            target = os.readlink(self.root / name)
        except (FileNotFoundError, OSError):
            return None
        slot = Path(target).name
        return slot if slot in SLOTS and Path(target).parent.name == "slots" else None

    def current(self) -> str | None:
        return self._read_link(CURRENT)

    def good(self) -> str | None:
        return self._read_link(GOOD)

    def set_pointer(self, name: str, slot: str) -> None:
        self.slot_path(slot)
        link = self.root / name
        tmp = self.root / f".{name}.tmp-{os.getpid()}"
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        os.symlink(f"slots/{slot}", tmp)
        os.replace(tmp, link)
        fsync_dir(self.root)

    # ------------------------------------------------------------------ state

    def _read_json(self, name: str) -> dict[str, Any] | None:
        try:
            doc = json.loads((self.state_dir / name).read_bytes())
        except FileNotFoundError:
            return None
        except ValueError:
            return None     # written with atomic_write, so only a hand edit can make it invalid
        return doc if isinstance(doc, dict) else None

    def trial(self) -> dict[str, Any] | None:
        return self._read_json("trial.json")

    def write_trial(self, trial: dict[str, Any]) -> None:
        atomic_write(self.state_dir / "trial.json", (json.dumps(trial, sort_keys=True) + "\n").encode())

    def clear_trial(self) -> None:
        try:
            (self.state_dir / "trial.json").unlink()
        except FileNotFoundError:
            return
        fsync_dir(self.state_dir)

    def floor(self) -> str:
        doc = self._read_json("floor.json") or {}
        return str(doc.get("version", "0.0.0"))

    def raise_floor(self, version: str) -> str:
        """Anti-rollback floor only rises: to ``version`` if that is higher."""
        if parse_version(version) > parse_version(self.floor()):
            atomic_write(self.state_dir / "floor.json", (json.dumps({"version": version}) + "\n").encode())
        return self.floor()

    @property
    def guard_pid_file(self) -> Path:
        return self.state_dir / "guard.pid"

    def describe(self) -> dict[str, Any]:
        cur, good = self.current(), self.good()
        return {"root": str(self.root), "current": cur, "good": good, "trial": self.trial(),
                "floor": self.floor(),
                "slots": {s: {"version": self.version(s), "present": self.slot_path(s).is_dir()} for s in SLOTS}}
