"""Base class and process entry point for every meter service.

A service runs as its own OS process, started by the supervisor as
``python -m firmware.services.<name> --config FILE --board FILE --run-dir DIR --heartbeat-fd N``.
Its lifecycle is ``setup()`` → ``run()`` (by default: ``step()`` in a loop) → ``teardown()``.
The main loop calls ``heartbeat()`` between steps, so a step that hangs stops the heartbeats and
the supervisor restarts the process. Methods decorated with ``@command("name")`` are served on
``<run_dir>/<service>.sock``; the supervisor forwards ``"<service>.<name>"`` requests there.
"""
from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import logging
import os
import select
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from firmware.config import Config
from firmware.config.store import ConfigStore
from firmware.control import ControlServer
from firmware.ipc.names import instance_name, shm_name
from firmware.logsetup import configure_logging
from hal.errors import MeterError

PR_SET_PDEATHSIG = 1
HEARTBEAT_INTERVAL_S = 0.5


def command(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Mark a method as the handler of control command ``name``; it receives ``user=`` and the args."""

    def mark(func: Callable[..., Any]) -> Callable[..., Any]:
        func._control_command = name  # type: ignore[attr-defined]
        return func

    return mark


@dataclass
class ServiceContext:
    name: str
    config: Config
    config_path: Path
    board_path: Path
    run_dir: Path
    data_dir: Path
    instance: str

    def shm_name(self, what: str) -> str:
        return shm_name(self.instance, what)

    def socket_path(self, service: str | None = None) -> Path:
        return self.run_dir / f"{service or self.name}.sock"

    @property
    def control_socket(self) -> Path:
        return self.run_dir / "control.sock"


class StopEvent:
    """A one-way event that a signal handler may set: ``set()`` only writes a byte to a pipe (safe at any point
    of the main thread, where a ``threading.Event`` may be inside its own lock), ``wait()`` waits for it with
    ``select``. Once set it stays set."""

    def __init__(self) -> None:
        self._read, self._write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._set = False

    def set(self) -> None:
        self._set = True
        with contextlib.suppress(OSError):  # the pipe already holds a byte: the flag says it
            os.write(self._write, b"x")

    def is_set(self) -> bool:
        return self._set

    def wait(self, timeout: float | None = None) -> bool:
        if not self._set:
            select.select([self._read], [], [], timeout)
        return self._set


class Service:
    name = ""
    step_interval_s = 0.5

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self.config = ctx.config
        self.log = logging.getLogger(ctx.name)
        self.endpoints: list[str] = []
        self.stopping = StopEvent()
        self._hb_fd: int | None = None
        self._last_hb = 0.0
        self._info: dict[str, Any] = {}

    # ------------------------------------------------------------------ lifecycle hooks

    def setup(self) -> None:
        """Open hardware, shared memory and servers; fill ``self.endpoints`` with where it listens."""

    def step(self) -> None:
        """One iteration of work; must return within the heartbeat timeout."""
        self.stopping.wait(self.step_interval_s)

    def run(self) -> None:
        while not self.stopping.is_set():
            self.step()
            self.heartbeat()

    def teardown(self) -> None:
        """Release what setup() took; called on every clean stop."""

    def dump_config(self) -> dict[str, Any]:
        """What the service is doing, for ``<service>.info`` and the status page."""
        return {}

    # ------------------------------------------------------------------ supervisor link

    def heartbeat(self, force: bool = False, /, **info: Any) -> None:
        self._info.update(info)
        now = time.monotonic()
        if self._hb_fd is None or (not force and now - self._last_hb < HEARTBEAT_INTERVAL_S):
            return
        self._last_hb = now
        message = {"state": "running", "endpoints": self.endpoints, "info": self._info}
        try:
            os.write(self._hb_fd, (json.dumps(message, default=str) + "\n").encode())
        except BlockingIOError:
            pass  # supervisor busy: skipping one beat is harmless
        except BrokenPipeError:
            self.stopping.set()  # supervisor gone

    def stop(self) -> None:
        self.stopping.set()

    def commands(self) -> dict[str, Callable[..., Any]]:
        found: dict[str, Callable[..., Any]] = {}
        for attr in dir(type(self)):
            func = getattr(type(self), attr, None)
            name = getattr(func, "_control_command", None)
            if name:
                found[name] = getattr(self, attr)
        found.setdefault("ping", lambda user="": "pong")
        found.setdefault("info", lambda user="": {"service": self.ctx.name, "pid": os.getpid(),
                                                  "endpoints": self.endpoints, **self.dump_config()})
        return found


def _die_with_parent() -> None:
    """Ask the kernel to SIGKILL us if the supervisor dies, so no service outlives the meter."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    p.add_argument("--config", required=True)
    p.add_argument("--board", required=True)
    p.add_argument("--run-dir", required=True)
    p.add_argument("--heartbeat-fd", type=int, default=-1)
    p.add_argument("--parent-pid", type=int, default=0)
    p.add_argument("--name", default=None, help="instance name given by the supervisor")
    return p.parse_args(argv)


def context_from_args(name: str, args: argparse.Namespace) -> ServiceContext:
    config = ConfigStore(args.config).load()
    run_dir = Path(args.run_dir)
    return ServiceContext(name, config, Path(args.config), Path(args.board), run_dir,
                          Path(config.meter.data_dir), instance_name(run_dir))


# What stops a service: SIGTERM (the supervisor), SIGINT (Ctrl-C in a terminal reaches every process), SIGHUP (the
# terminal gone). A service forked from the supervisor starts with them blocked (``firmware.preload``): one sent
# while it starts stays pending until ``main`` has installed its handlers.
STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGHUP})


def _stop_on_signal(service: Service) -> Callable[[int, Any], None]:
    """SIGTERM (the supervisor) and SIGINT (Ctrl-C in a terminal reaches every process): stop. A handler runs
    in the main thread between two bytecodes, wherever that is (inside a lock it holds, too): it only sets the
    stop event, which writes one byte to a pipe."""
    def handler(signum: int, frame: Any) -> None:
        service.stopping.set()
    return handler


def main(service_cls: type[Service], argv: list[str] | None = None) -> int:
    """Entry point of a service process (``if __name__ == "__main__": sys.exit(main(MyService))``)."""
    args = parse_args(argv)
    _die_with_parent()
    if args.parent_pid and os.getppid() != args.parent_pid:
        return 1  # the supervisor died while we were starting
    name = args.name or service_cls.name
    ctx = context_from_args(name, args)
    configure_logging(ctx.config, name, ctx.data_dir)
    service = service_cls(ctx)
    if args.heartbeat_fd >= 0:
        os.set_blocking(args.heartbeat_fd, False)
        service._hb_fd = args.heartbeat_fd
    signal.signal(signal.SIGTERM, _stop_on_signal(service))
    signal.signal(signal.SIGINT, _stop_on_signal(service))
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)   # one that came while it started: handled now
    control = ControlServer(ctx.socket_path(), service.commands())
    try:
        service.setup()
        control.start()
        service.heartbeat(True)
        service.log.info("started", extra={"fields": {"pid": os.getpid(), "endpoints": service.endpoints}})
        service.run()
        return 0
    except MeterError as exc:
        if service.stopping.is_set():
            # asked to stop, and a device or peer going away while it did: the stop asked for, not a failure
            service.log.info("stopped (%s while stopping)", exc)
            return 0
        service.log.error("stopped: %s", exc)
        return 1
    finally:
        control.stop()
        try:
            service.teardown()
        except Exception:
            service.log.exception("teardown failed")
        logging.shutdown()


if __name__ == "__main__":  # pragma: no cover
    sys.exit("run a concrete service module, e.g. python -m firmware.services.metrology")
