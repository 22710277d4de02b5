"""Starting services by fork from the supervisor, which has imported their code once (``[supervisor] start``).

A service started as a new interpreter imports numpy, the configuration schema, the IPC and its own modules
again, and keeps a private copy of all of it: some 20 to 90 MB per process. Forked from a supervisor that
imported them first, a service shares those pages with the supervisor and every other service until one of
them writes to a page (copy-on-write). Two things would write to nearly all of them and are kept from it:

- the cyclic garbage collector, which marks every object it scans: the supervisor freezes what it imported
  (``gc.freeze``) and each child freezes what it inherited at once, so neither scans the shared objects;
- OpenBLAS, which would start one thread per core, each with its own buffer: every process of the meter
  runs numpy on one thread (``firmware/__init__.py``), and a forked child inherits no threads anyway.

The child keeps only what a fresh process would have: standard input from /dev/null, standard output and
error, and its heartbeat pipe. Every other descriptor it inherited (the supervisor's control socket and its
connections, other services' pipes, log files, databases) is pointed at /dev/null rather than closed, so
that its number is never reused by a file the service opens and later closed by a stale object that still
holds it. The child never returns into the supervisor's code: it runs the service's ``main`` and leaves by
``os._exit``, so nothing of the supervisor is flushed, finalised or closed twice.
"""
from __future__ import annotations

import contextlib
import ctypes
import gc
import importlib
import inspect
import logging
import os
import signal
import subprocess
import sys
import time
import traceback
from types import ModuleType
from typing import Sequence

log = logging.getLogger("supervisor")

PR_SET_NAME = 15
WAIT_POLL_S = 0.005        # how often wait(timeout) looks again when the pidfd cannot be used
# What every service uses, imported by the supervisor before its first fork whatever services run.
COMMON_MODULES = ("numpy", "firmware.service", "firmware.ipc.ring", "firmware.ipc.snapshot",
                  "firmware.storage.logstore", "firmware.storage.eventlog", "firmware.config.board")


def preload(modules: Sequence[str]) -> list[str]:
    """Import the common modules and ``modules`` (the services' own), then freeze them out of the garbage
    collector's reach. Returns the modules that failed to import: their service will fail in its own
    process and be reported there, like any service that cannot start."""
    failed = []
    for name in (*COMMON_MODULES, *modules):
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - a broken service must not stop the supervisor
            log.warning("could not preload %s (%s: %s); its service imports it itself", name,
                        type(exc).__name__, exc)
            failed.append(name)
    gc.collect()
    gc.freeze()
    return failed


class ForkedProcess:
    """A child made by ``os.fork``, with what the supervisor uses of ``subprocess.Popen``."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        try:
            self._pidfd: int | None = os.pidfd_open(pid)
        except (OSError, AttributeError):
            self._pidfd = None

    def _reaped(self, status: int) -> int:
        self.returncode = os.waitstatus_to_exitcode(status)
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None
        return self.returncode

    def poll(self) -> int | None:
        if self.returncode is not None:
            return self.returncode
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            return self._reaped(0)     # reaped by someone else: nothing more can be learned
        return self._reaped(status) if pid else None

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise subprocess.TimeoutExpired(f"pid {self.pid}", timeout or 0.0)
            self._sleep(left)
        return code

    def _sleep(self, left: float | None) -> None:
        """Until the child exits (its pidfd turns readable) or ``left`` seconds pass."""
        if self._pidfd is None:
            time.sleep(WAIT_POLL_S if left is None else min(WAIT_POLL_S, left))
            return
        import select

        select.select([self._pidfd], [], [], left)

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)


def service_class(module: ModuleType) -> type:
    """The one ``Service`` subclass a service module defines (what its ``__main__`` block runs)."""
    from firmware.service import Service

    found = [v for v in vars(module).values() if inspect.isclass(v) and issubclass(v, Service)
             and v.__module__ == module.__name__]
    if len(found) != 1:
        raise RuntimeError(f"{module.__name__} defines {len(found)} Service classes; a service module defines one")
    return found[0]


def fork_service(module: str, name: str, argv: list[str], heartbeat_fd: int) -> ForkedProcess:
    """Fork a child that runs service ``module`` as ``python -m module *argv`` would; returns it at once."""
    sys.stdout.flush()          # else the child would write the supervisor's unflushed output a second time
    sys.stderr.flush()
    # A stop signal that reached the child before the service's handlers are in place would run the
    # supervisor's handler in the child (lost) or kill it half started: the child keeps them blocked (pending)
    # until ``firmware.service.main`` has installed its handlers and unblocks them.
    from firmware.service import STOP_SIGNALS

    mask = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    pid = os.fork()
    if pid:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        return ForkedProcess(pid)
    code = 1
    try:
        code = _child(module, name, argv, heartbeat_fd)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001 - whatever happens, the child must not return into the supervisor
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _child(module: str, name: str, argv: list[str], heartbeat_fd: int) -> int:
    gc.freeze()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    _set_process_name(f"meter-{name}")
    _detach_inherited_fds(keep={0, 1, 2, heartbeat_fd})
    for handler in list(logging.getLogger().handlers):   # the supervisor's; main() installs the service's
        logging.getLogger().removeHandler(handler)
    from firmware.service import main

    return main(service_class(importlib.import_module(module)), argv)


def _set_process_name(name: str) -> None:
    """The name ps, top and /proc/<pid>/comm show (15 bytes at most), so each service is told apart."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_NAME, name.encode()[:15], 0, 0, 0)


def _detach_inherited_fds(keep: set[int]) -> None:
    devnull = os.open(os.devnull, os.O_RDWR)
    try:
        os.dup2(devnull, 0)       # standard input, as the supervisor gives a service it starts with exec
        for fd in [int(f) for f in os.listdir("/proc/self/fd")]:
            if fd in keep or fd == devnull:
                continue
            try:
                os.fstat(fd)        # the listing's own descriptor is closed by now
            except OSError:
                continue
            os.dup2(devnull, fd, inheritable=False)
    finally:
        os.close(devnull)
