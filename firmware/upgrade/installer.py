"""Install a signed image to the inactive slot, then hand over to the boot guard.

``Installer.check`` refuses an image, before anything on the meter changes, when: it is not a
well-formed image (``format``/``truncated``/``damaged``), no trusted key signed it (``unsigned``/
``untrusted``/``signature``), it is for another product or board (``product``/``board``), its
version is not above the installed one (``downgrade``), is below the anti-rollback floor
(``floor``), or cannot upgrade from the installed version (``min_from``), the revenue lock is on
(``locked``), the inactive slot would not fit (``space``), or another upgrade is on probation
(``busy``). Only then is the whole payload read and every file's SHA-256 checked.

``Installer.install`` then: extracts into ``slots/.staging-X`` checking each file's hash as it is
written, makes its venv (``firmware.upgrade.venv``: the running slot's installed wheels shared, only
those that differ installed), fsyncs, re-reads and re-checks every file from disk, renames the staging
directory to ``slots/X``, writes ``trial.json``, switches ``current`` to X and wakes the boot guard, which
starts the new slot and commits it or falls back (``firmware.upgrade.guard``). A kill at any
point leaves ``current`` on a complete slot; recovery tidies the rest.
"""
from __future__ import annotations

import os
import shutil
import signal
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from firmware import __version__ as RUNNING_VERSION
from firmware.lockstate import revenue_locked_at
from firmware.security.authorize import blocked_by_revenue_lock
from firmware.storage.atomic import fsync_dir
from firmware.upgrade.errors import UpgradeFailed, UpgradeRefused
from firmware.upgrade.image import PRODUCT, FileEntry, Image, parse_version, sha256_file
from firmware.upgrade.log import UpgradeLog
from firmware.upgrade.settings import UpgradeSettings
from firmware.upgrade.slots import SlotLayout
from firmware.upgrade.trust import TrustStore
from firmware.upgrade.venv import make_venv

FILE_OVERHEAD_BYTES = 4096     # one filesystem block per file at worst (ext4 default block size)


@dataclass
class CheckedImage:
    image: Image
    key_id: str
    target_slot: str
    installed_version: str


class _SlotFile:
    """Writes one payload file into the staging directory and makes it durable on close."""

    def __init__(self, base: Path, entry: FileEntry) -> None:
        self.path = base / entry.path
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, entry.mode)

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view):]

    def close(self) -> None:
        os.fsync(self.fd)
        os.close(self.fd)


class Installer:
    def __init__(self, settings: UpgradeSettings, *, log: UpgradeLog | None = None,
                 locked: Callable[[], bool] | None = None, progress: Callable[[str], None] | None = None) -> None:
        self.settings = settings
        self.layout = SlotLayout(settings.root, settings.state_dir)
        self.trust = TrustStore(settings.trust_store)
        self.log = log or UpgradeLog(settings.state_dir, settings.log_depth)
        self._locked = locked or (lambda: revenue_locked_at(settings.revenue_lock_file, settings.run_dir))
        self._progress = progress or (lambda step: None)
        self.venv_maker: Callable[[Path], object] = (
            lambda slot_dir: make_venv(slot_dir, system_site_packages=settings.system_site_packages,
                                       running=self._running_slot()))

    # ------------------------------------------------------------------ checks

    def installed_version(self) -> str:
        """Version of the committed slot; a meter run from a source tree reports its own version."""
        return self.layout.version(self.layout.good()) or RUNNING_VERSION

    def check(self, image_path: str | Path) -> CheckedImage:
        layout, name = self.layout, Path(image_path).name
        image = Image.open(image_path)
        kid = self.trust.verify(image.manifest.raw, image.signatures)
        m = image.manifest
        if m.data.get("product") != PRODUCT:
            raise UpgradeRefused("product", f"{name} is for product {m.data.get('product')!r}, not {PRODUCT!r}")
        board = self.settings.board
        if board not in m.boards:
            raise UpgradeRefused("board", f"{name} is built for board(s) {', '.join(m.boards)}; this meter is "
                                 f"a {board!r}")
        installed, floor = self.installed_version(), layout.floor()
        if parse_version(m.version) <= parse_version(installed):
            raise UpgradeRefused("downgrade", f"{name} is version {m.version}; the installed version is "
                                 f"{installed}. Only a higher version can be installed")
        if parse_version(m.version) < parse_version(floor):
            raise UpgradeRefused("floor", f"{name} is version {m.version}, below this meter's anti-rollback "
                                 f"floor {floor}")
        if parse_version(installed) < parse_version(m.min_from_version):
            raise UpgradeRefused("min_from", f"{name} can only upgrade from version {m.min_from_version} or "
                                 f"later; install an intermediate version over {installed} first")
        if m.trust_update:
            self.trust.check_update(m.trust_update)
        if blocked_by_revenue_lock("upgrade_install") and self._locked():
            raise UpgradeRefused("locked", "the revenue lock is on; a sealed meter accepts no firmware. Have "
                                 "the lock opened by the authority that sealed it")
        current, good = layout.current(), layout.good()
        if good is None:
            raise UpgradeRefused("unprovisioned", f"{layout.root} holds no committed slot to fall back to; "
                                 "provision the meter first (meter image provision IMAGE)")
        if current != good:
            trial = layout.trial() or {}
            raise UpgradeRefused("busy", f"version {trial.get('version', '?')} in slot {current} is on probation "
                                 f"(last good slot: {good}); wait until it is committed or rolled back")
        target = layout.other(good)
        self._check_space(image, target)
        return CheckedImage(image, kid, target, installed)

    def _check_space(self, image: Image, target: str) -> None:
        m = image.manifest
        need = m.payload_bytes + FILE_OVERHEAD_BYTES * len(m.files) + len(m.raw) + self.settings.free_space_margin
        self.layout.slots_dir.mkdir(parents=True, exist_ok=True)
        usage = shutil.disk_usage(self.layout.slots_dir)
        reclaim = self.layout.size_bytes(target) if self.layout.slot_path(target).is_dir() else 0
        if usage.free + reclaim < need:
            raise UpgradeRefused("space", f"the image needs {need} bytes (with a {self.settings.free_space_margin}"
                                 f"-byte margin); {usage.free + reclaim} are free for slot {target}")

    # ------------------------------------------------------------------ install

    def install(self, image_path: str | Path, user: str = "", notify_guard: bool = True,
                attempt: str | None = None) -> dict[str, Any]:
        attempt = attempt or new_attempt_id()
        name = Path(image_path).name
        self.log.record(attempt, "attempt", message=f"image {name}", user=user)
        try:
            checked = self.check(image_path)
            checked.image.scan()                 # every file's hash, still before touching anything
        except UpgradeRefused as exc:
            self.log.record(attempt, "refused", reason=exc.reason, message=str(exc), user=user)
            raise
        version, slot = checked.image.manifest.version, checked.target_slot
        self.log.record(attempt, "accepted", version=version, slot=slot, user=user,
                        message=f"from {checked.installed_version}, signed by {checked.key_id}")
        try:
            self._write_slot(attempt, checked)
        except (OSError, UpgradeRefused, UpgradeFailed) as exc:
            self.layout.cleanup_transient()
            self.log.record(attempt, "failed", version=version, slot=slot, message=str(exc), user=user)
            raise UpgradeFailed(f"installing {name} to slot {slot} failed ({exc}); the running slot is "
                                "unchanged") from exc
        previous = self.layout.current()
        self._step(attempt, "arm", version, slot)
        self.layout.write_trial({"attempt": attempt, "slot": slot, "previous": previous, "version": version,
                                 "boots": 0, "armed_at": time.time(), "user": user})
        self._step(attempt, "switch", version, slot)
        self.layout.set_pointer("current", slot)
        guard = self.wake_guard() if notify_guard else None
        return {"attempt": attempt, "version": version, "slot": slot, "previous": previous,
                "key_id": checked.key_id, "guard_pid": guard}

    def _running_slot(self) -> Path | None:
        """The committed slot, whose installed dependencies the new slot's venv shares where they are the same."""
        good = self.layout.good()
        return self.layout.slot_path(good) if good else None

    def _step(self, attempt: str, step: str, version: str, slot: str) -> None:
        self._progress(step)
        self.log.record(attempt, "step", version=version, slot=slot, message=step)

    def _write_slot(self, attempt: str, checked: CheckedImage) -> None:
        layout, slot = self.layout, checked.target_slot
        version = checked.image.manifest.version
        layout.cleanup_transient()
        staging = layout.staging_path(slot)
        self._step(attempt, "extract", version, slot)
        staging.mkdir(parents=True)
        checked.image.scan(lambda entry: _SlotFile(staging, entry))
        (staging / "manifest.json").write_bytes(checked.image.manifest.raw)
        sigdir = staging / "signatures"
        sigdir.mkdir()
        for kid, sig in checked.image.signatures.items():
            (sigdir / f"{kid}.sig").write_bytes(sig)
        if checked.image.manifest.data.get("dependencies") == "bundled":
            self._step(attempt, "deps", version, slot)
            self.venv_maker(staging)
        _fsync_tree(staging)
        self._step(attempt, "verify", version, slot)
        for entry in checked.image.manifest.files:
            if sha256_file(staging / entry.path) != entry.sha256:
                raise UpgradeRefused("damaged", f"{entry.path} reads back differently from what was written; "
                                     "the storage may be failing")
        self._step(attempt, "place", version, slot)
        layout.place(slot)

    def wake_guard(self) -> int | None:
        """Tell a running boot guard to start the new slot now (it also notices within one poll)."""
        try:
            pid = int(self.layout.guard_pid_file.read_text().strip())
            os.kill(pid, signal.SIGHUP)
            return pid
        except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
            return None

    def wait(self, attempt: str, timeout_s: float, poll_s: float = 0.2) -> dict[str, Any] | None:
        """The attempt's outcome row (committed, rolled_back, ...) or None if none came in time."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            outcome = self.log.outcome(attempt)
            if outcome:
                return outcome
            time.sleep(poll_s)
        return None


def new_attempt_id() -> str:
    return uuid.uuid4().hex[:12]


def provision(settings: UpgradeSettings, image_path: str | Path, slot: str = "a",
              venv_maker: Callable[[Path], object] | None = None) -> dict[str, Any]:
    """Factory step: verify an image with the trust store and make it the first, committed slot.

    ``venv_maker`` replaces how the slot's venv is made (the image build makes it with the target's own
    interpreter, inside its tree).
    """
    layout = SlotLayout(settings.root, settings.state_dir)
    image = Image.open(image_path)
    kid = TrustStore(settings.trust_store).verify(image.manifest.raw, image.signatures)
    if settings.board not in image.manifest.boards:
        raise UpgradeRefused("board", f"image is for {', '.join(image.manifest.boards)}, not {settings.board}")
    installer = Installer(settings, locked=lambda: False)
    if venv_maker is not None:
        installer.venv_maker = venv_maker
    checked = CheckedImage(image, kid, slot, "")
    image.scan()
    installer._write_slot("provision", checked)
    layout.set_pointer("current", slot)
    layout.set_pointer("good", slot)
    layout.raise_floor(image.manifest.version)
    installer.log.record("provision", "committed", version=image.manifest.version, slot=slot,
                         message="provisioned")
    return {"slot": slot, "version": image.manifest.version, "key_id": kid}


def _fsync_tree(top: Path) -> None:
    for dirpath, dirnames, filenames in os.walk(top, topdown=False):
        for name in filenames:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(dirpath)
