"""Shared memory that another local account put under a meter's name is refused, never adopted."""
from __future__ import annotations

import os
import uuid

import pytest

from firmware.ipc import shm
from firmware.ipc.ring import Ring
from firmware.ipc.snapshot import Snapshot
from hal.errors import IPCError

NOBODY = 65534
LAYOUT = [("i_a", 1), ("v_an", 1)]


@pytest.fixture
def name():
    n = f"meter-test-{uuid.uuid4().hex[:12]}.measurements"
    yield n
    shm.unlink(n)


def squat(name: str, data: bytes, mode: int = 0o666, uid: int = NOBODY) -> None:
    """Create ``name`` in /dev/shm as another account (a child process that drops to ``uid``)."""
    pid = os.fork()
    if pid == 0:
        try:
            os.setgid(uid)
            os.setuid(uid)
            fd = os.open(shm.shm_path(name), os.O_RDWR | os.O_CREAT | os.O_EXCL, mode)
            os.fchmod(fd, mode)
            os.write(fd, data)
            os.close(fd)
            os._exit(0)
        except BaseException:  # noqa: BLE001 - the child only reports failure through its exit status
            os._exit(1)
    assert os.waitpid(pid, 0)[1] == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another account")
def test_a_snapshot_pre_created_by_another_account_is_refused_by_writer_and_reader(name):
    # The squatter copies a real snapshot's bytes, with a spoofed current: what the review read as 12345 A.
    genuine = Snapshot.create(name, LAYOUT)
    genuine.publish({"i_a": 12345.0, "v_an": 230.0})
    data = bytes(genuine._mm)
    genuine.close()
    shm.unlink(name)
    squat(name, data)
    with pytest.raises(IPCError, match=rf"belongs to uid {NOBODY}, not to the meter.*remove it"):
        Snapshot.create(name, LAYOUT)
    with pytest.raises(IPCError, match=f"belongs to uid {NOBODY}"):
        Snapshot.attach(name)
    with pytest.raises(IPCError, match=f"belongs to uid {NOBODY}"):
        Ring.create(name, 64, 4)


def test_an_object_others_may_write_is_refused(name):
    fd = os.open(shm.shm_path(name), os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    os.fchmod(fd, 0o666)
    os.ftruncate(fd, 4096)
    os.close(fd)
    with pytest.raises(IPCError, match="has mode 0666; others could change it"):
        Snapshot.create(name, LAYOUT)


def test_a_symlink_is_not_followed(name, tmp_path):
    target = tmp_path / "elsewhere"
    target.write_bytes(b"\0" * 4096)
    os.symlink(target, shm.shm_path(name))
    with pytest.raises(IPCError, match="cannot be opened"):
        Snapshot.create(name, LAYOUT)
    assert target.read_bytes() == b"\0" * 4096


def test_created_objects_are_private(name):
    Snapshot.create(name, LAYOUT).close()
    assert os.stat(shm.shm_path(name)).st_mode & 0o777 == 0o600


def test_a_truncated_object_is_replaced_by_its_writer_and_refused_by_readers(name):
    snap = Snapshot.create(name, LAYOUT)
    size = len(snap._mm)
    snap.close()
    os.truncate(shm.shm_path(name), 200)               # header and magic intact, data cut off
    with pytest.raises(IPCError, match="layout lies past its end"):
        Snapshot.attach(name)
    again = Snapshot.create(name, LAYOUT)               # ours: replaced at full size
    assert len(again._mm) == size and os.stat(shm.shm_path(name)).st_size == size
    again.close()
    ring = Ring.create(name + ".ring", 64, 8)
    ring.close()
    os.truncate(shm.shm_path(name + ".ring"), 5000)
    try:
        with pytest.raises(IPCError, match="shorter than its ring geometry needs"):
            Ring.attach(name + ".ring")
    finally:
        shm.unlink(name + ".ring")
