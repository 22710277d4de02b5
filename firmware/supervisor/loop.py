"""The supervisor: starts every service as its own process, watches it, restarts it, stops everything.

Each child gets the write end of a pipe for heartbeats (JSON lines). The supervisor notices a
crash at once (the pipe closes, the process exits) and a hang when heartbeats stop for
``[supervisor] heartbeat_timeout``; it restarts the service after a backoff that doubles from
``restart_backoff_min`` to ``restart_backoff_max``, and marks it ``failed`` after ``max_restarts``
crashes within ``restart_window`` without touching the other services. One stop path serves both a
requested restart and the meter's own stop: SIGTERM, up to ``stop_timeout`` to exit, SIGKILL, reap. A
restarted service's new process starts only once the old one is reaped, so two processes never drive
the same hardware. On SIGTERM or SIGINT the supervisor stops every service that way and removes its sockets
and shared memory (named anew at each start: firmware.ipc.instance). Services die with it (PR_SET_PDEATHSIG).

Heartbeat pipes are kept by file descriptor, each with the process that holds its write end: the end
of one process's pipe closes that pipe only, never the pipe of the process that replaced it.

Between events the supervisor sleeps until its next deadline: a heartbeat timeout, a restart after backoff,
the end of a stop. A heartbeat, a closed pipe, a signal, a restart or shutdown asked on the control socket
(through a wake-up pipe) end the sleep; the services are looked at again after anything but a plain heartbeat.
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import queue
import selectors
import signal
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

from firmware import __version__, maintenance, powerup
from firmware.config import Config
from firmware.control import ControlClient, ControlError, ControlServer
from firmware.health import SampleLoss
from firmware.ipc import shm
from firmware.ipc.instance import squat_reporter, start_instance
from firmware.ipc.names import instance_glob, instance_name
from firmware.preload import fork_service, preload
from firmware.services.registry import ServiceSpec
from firmware.security.control_gate import from_config as control_gate
from firmware.supervisor.report import MeterReport
from hal.errors import MeterError

log = logging.getLogger("supervisor")

START_GRACE_S = 20.0      # first heartbeat may take this long (imports, chip bring-up)
IDLE_CHECK_S = 1.0        # the services are looked at at least this often, whatever is due
HANG_MARGIN_S = 0.01      # looked at this long after a heartbeat timeout, so that it has passed, not just come
SHUTDOWN_TICK_S = 0.02    # how often the meter's own stop looks for exited services
KILL_REAP_S = 1.0         # a process not gone this long after SIGKILL is stuck in uninterruptible I/O


class Process(Protocol):
    """What the supervisor uses of a child process: a ``subprocess.Popen`` (start = "exec") or a
    ``firmware.preload.ForkedProcess`` (start = "fork")."""
    pid: int

    def poll(self) -> int | None: ...
    def wait(self, timeout: float | None = None) -> int: ...
    def kill(self) -> None: ...
    def send_signal(self, sig: int) -> None: ...


@dataclass
class Child:
    spec: ServiceSpec
    state: str = "stopped"            # starting | running | stopping | backoff | failed | stopped
    proc: Process | None = None
    pipe_r: int | None = None         # read end of the current process's heartbeat pipe
    started_at: float = 0.0
    stop_deadline: float = 0.0        # stopping: SIGKILL at this time, then the time to report it stuck
    killed_at: float | None = None    # stopping: when SIGKILL was sent
    last_heartbeat: float = 0.0
    restart_at: float = 0.0
    restarts: int = 0
    crashes: deque[float] = field(default_factory=deque)
    endpoints: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    last_exit: str = ""

    def status(self) -> dict[str, Any]:
        return {"state": self.state, "pid": self.proc.pid if self.proc else None, "restarts": self.restarts,
                "endpoints": self.endpoints, "last_exit": self.last_exit, "essential": self.spec.essential,
                "description": self.spec.description, "info": self.info}


@dataclass
class Pipe:
    """The read end of one process's heartbeat pipe: it belongs to that process, not to its service."""
    child: Child
    proc: Process
    buffer: bytes = b""


class Supervisor:
    def __init__(self, config: Config, config_path: Path, board_path: Path, services: Sequence[ServiceSpec],
                 run_dir: Path | None = None, on_ready: Callable[[Supervisor], None] | None = None) -> None:
        self.config = config
        self.config_path = Path(config_path).resolve()
        self.board_path = Path(board_path).resolve()
        self.run_dir = Path(run_dir or config.meter.run_dir).resolve()
        self.instance = instance_name(self.run_dir)
        self.children = {spec.name: Child(spec) for spec in services}
        self.loss = SampleLoss(self.children)
        self.sv = config.supervisor
        self.on_ready = on_ready
        self._ready_reported = False
        self._stop = False
        self._unreaped: list[Process] = []
        self._selector = selectors.DefaultSelector()
        self._pipes: dict[int, Pipe] = {}
        self._restart_requests: queue.SimpleQueue[str] = queue.SimpleQueue()  # from control threads
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)      # ends the main loop's sleep
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        self.maintenance = maintenance.Requests(self)      # master reset, factory defaults, wipe
        self.control = ControlServer(self.run_dir / "control.sock", {
            "status": self.cmd_status,
            "restart": self.cmd_restart,
            "shutdown": self.cmd_shutdown,
            **self.maintenance.handlers(),
        }, fallback=self.forward, gate=control_gate(config), mode=0o660)
        self.started = time.time()
        self.report = MeterReport(self)

    # ------------------------------------------------------------------ main loop

    def run(self) -> int:
        self.instance = start_instance(self.run_dir, squat_reporter(self.config))   # before any service reads it
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        if self.sv.start == "fork":
            # before the control socket's threads start: the imports run with this thread alone
            preload([c.spec.module for c in self.children.values()])
        self.control.start()
        self.power_up = powerup.record(self.config.meter.data_dir)   # before any service reads it
        log.info("supervisor started", extra={"fields": {"version": __version__, "run_dir": str(self.run_dir),
                                                         "services": list(self.children), "start": self.sv.start}})
        for child in self.children.values():
            self._spawn(child)
        try:
            now = time.monotonic()
            self._check(now)
            while not self._stop:
                due = self._next_due(now)
                event = self._poll(max(due - time.monotonic(), 0.0))
                now = time.monotonic()
                if event or now >= due:
                    self._check(now)
        finally:
            self.shutdown()
        return 0

    def _next_due(self, now: float) -> float:
        """When the services must next be looked at if nothing happens before."""
        due = now + IDLE_CHECK_S
        for child in self.children.values():
            if child.state in ("starting", "running"):
                due = min(due, child.last_heartbeat + self._heartbeat_limit(child) + HANG_MARGIN_S)
            elif child.state == "stopping":
                due = min(due, now + SHUTDOWN_TICK_S)    # its exit may come without a pipe to close
            elif child.state == "backoff":
                due = min(due, child.restart_at)
        return due

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):     # a wake-up pending already; or stopped
            os.write(self._wake_w, b"!")

    def _on_signal(self, signum: int, frame: Any) -> None:
        self._stop = True
        self._wake()

    def _spawn(self, child: Child) -> None:
        read_fd, write_fd = os.pipe()
        args = ["--config", str(self.config_path), "--board", str(self.board_path), "--run-dir", str(self.run_dir),
                "--heartbeat-fd", str(write_fd), "--parent-pid", str(os.getpid()), "--name", child.spec.name]
        proc: Process
        try:
            if self.sv.start == "fork":
                proc = fork_service(child.spec.module, child.spec.name, args, write_fd)
            else:
                proc = subprocess.Popen([sys.executable, "-m", child.spec.module, *args], pass_fds=(write_fd,),
                                        stdin=subprocess.DEVNULL)
        except OSError as exc:
            os.close(read_fd)
            child.last_exit = f"could not start: {exc}"
            self._crashed(child, time.monotonic())
            return
        finally:
            os.close(write_fd)
        child.proc = proc
        os.set_blocking(read_fd, False)
        child.pipe_r = read_fd
        child.state = "starting"
        child.started_at = child.last_heartbeat = time.monotonic()
        self._pipes[read_fd] = Pipe(child, child.proc)
        self.loss.process_started(child.spec.name)
        self._selector.register(read_fd, selectors.EVENT_READ)
        log.info("started %s", child.spec.name, extra={"fields": {"pid": child.proc.pid}})

    def _poll(self, timeout_s: float) -> bool:
        """Read what came within ``timeout_s``; True if anything but plain heartbeats happened."""
        event = False
        for key, _ in self._selector.select(timeout_s):
            if key.fd == self._wake_r:
                while True:
                    try:
                        if not os.read(self._wake_r, 4096):
                            break
                    except BlockingIOError:
                        break
                event = True
                continue
            pipe = self._pipes[key.fd]
            try:
                data = os.read(key.fd, 65536)
            except BlockingIOError:
                continue
            if not data:
                self._close_fd(key.fd)
                event = True
                continue
            if pipe.proc is not pipe.child.proc:
                continue  # a replaced process's last lines say nothing about its successor
            pipe.buffer += data
            *lines, pipe.buffer = pipe.buffer.split(b"\n")
            for line in lines:
                event = self._heartbeat(pipe.child, line) or event
        return event

    def _heartbeat(self, child: Child, line: bytes) -> bool:
        """Take one heartbeat line; True if it changed the child's state (its first: now running)."""
        try:
            message = json.loads(line)
        except ValueError:
            return False
        child.last_heartbeat = time.monotonic()
        child.endpoints = list(message.get("endpoints") or [])
        child.info = dict(message.get("info") or {})
        self.loss.heartbeat(child.spec.name, child.info, child.last_heartbeat, time.time())
        if child.state == "starting":
            child.state = "running"
            log.info("%s is running", child.spec.name, extra={"fields": {"endpoints": child.endpoints}})
            return True
        return False

    def _close_pipe(self, child: Child) -> None:
        if child.pipe_r is not None:
            self._close_fd(child.pipe_r)

    def _close_fd(self, fd: int) -> None:
        pipe = self._pipes.pop(fd)
        self._selector.unregister(fd)
        os.close(fd)
        if pipe.child.pipe_r == fd:
            pipe.child.pipe_r = None

    def _check(self, now: float) -> None:
        self._unreaped = [p for p in self._unreaped if p.poll() is None]
        while not self._restart_requests.empty():
            self._restart(self.children[self._restart_requests.get()], now)
        self.maintenance.drain()
        for child in self.children.values():
            if child.state == "stopping":
                if self._advance_stop(child, now):
                    child.restarts += 1
                    self._spawn(child)
            elif child.state in ("starting", "running"):
                self._check_live(child, now)
            elif child.state == "backoff" and now >= child.restart_at:
                child.restarts += 1
                self._spawn(child)
        if not self._ready_reported and all(c.state in ("running", "failed") for c in self.children.values()):
            self._ready_reported = True
            if self.on_ready:
                self.on_ready(self)

    def _check_live(self, child: Any, now: float) -> None:
        """A starting or running child: exited (crash), hung (no heartbeat: killed), or well."""
        assert child.proc is not None
        code = child.proc.poll()
        if code is None and child.pipe_r is None:
            # Pipe closed but the process lives: it is on its way out; give it a moment.
            try:
                code = child.proc.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                child.proc.kill()
                code = self._reap(child.proc) or -signal.SIGKILL
        if code is not None:
            child.last_exit = _describe_exit(code)
            log.warning("%s exited: %s", child.spec.name, child.last_exit)
            self._crashed(child, now)
            return
        limit = self._heartbeat_limit(child)
        if now - child.last_heartbeat > limit:
            child.last_exit = f"no heartbeat for {now - child.last_heartbeat:.1f} s (hung); killed"
            log.error("%s hung: %s", child.spec.name, child.last_exit)
            child.proc.kill()
            self._reap(child.proc)
            self._crashed(child, now)

    def _heartbeat_limit(self, child: Child) -> float:
        # a heartbeat timeout set longer than the start grace (a loaded host) applies to the start too
        return (max(START_GRACE_S, self.sv.heartbeat_timeout) if child.state == "starting"
                else self.sv.heartbeat_timeout)

    def _reap(self, proc: Process) -> int | None:
        """Collect a killed child, but never let one stuck in uninterruptible I/O stall supervision."""
        try:
            return proc.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            log.error("pid %d did not die within 1 s of SIGKILL (uninterruptible I/O?); left to reap later",
                      proc.pid)
            self._unreaped.append(proc)
            return None

    def _crashed(self, child: Child, now: float) -> None:
        self._close_pipe(child)
        child.crashes.append(now)
        while child.crashes and now - child.crashes[0] > self.sv.restart_window:
            child.crashes.popleft()
        if len(child.crashes) > self.sv.max_restarts:
            child.state = "failed"
            log.error("%s failed %d times within %g s: marked failed, not restarted (the rest keeps running)",
                      child.spec.name, len(child.crashes), self.sv.restart_window)
            return
        delay = min(self.sv.restart_backoff_max, self.sv.restart_backoff_min * 2 ** (len(child.crashes) - 1))
        child.state = "backoff"
        child.restart_at = now + delay
        log.info("restarting %s in %.2f s", child.spec.name, delay,
                 extra={"fields": {"crashes_in_window": len(child.crashes)}})

    def _restart(self, child: Child, now: float) -> None:
        """A requested restart: a running process is stopped first (``_check`` starts its successor once it
        is reaped); a service that is not running (backoff, failed) starts at once."""
        child.crashes.clear()
        if child.state in ("starting", "running"):
            self._begin_stop(child, now)
        elif child.state != "stopping":
            child.restarts += 1
            self._spawn(child)

    # ------------------------------------------------------------------ the stop path

    def _begin_stop(self, child: Child, now: float) -> None:
        """SIGTERM; ``_advance_stop`` then waits for the exit, SIGKILLs after ``stop_timeout`` and reaps."""
        assert child.proc is not None
        child.state = "stopping"
        child.stop_deadline = now + self.sv.stop_timeout
        child.killed_at = None
        if child.proc.poll() is None:
            child.proc.send_signal(signal.SIGTERM)

    def _advance_stop(self, child: Child, now: float) -> bool:
        """One look at a stopping service; True once its process is reaped (and its pipe closed)."""
        assert child.proc is not None
        code = child.proc.poll()
        if code is None and now >= child.stop_deadline:
            if child.killed_at is None:
                log.warning("%s did not stop within %g s: killed", child.spec.name, self.sv.stop_timeout)
                child.proc.kill()
                child.killed_at = now
                child.stop_deadline = now + KILL_REAP_S
                code = child.proc.poll()
            else:
                log.error("%s (pid %d) did not die within %g s of SIGKILL (uninterruptible I/O?); it is still "
                          "waited for", child.spec.name, child.proc.pid, KILL_REAP_S)
                child.stop_deadline = math.inf
        if code is None:
            return False
        child.last_exit = _describe_exit(code)
        log.info("%s stopped: %s", child.spec.name, child.last_exit)
        self._close_pipe(child)
        return True

    def shutdown(self) -> None:
        self.stop_services()
        self.control.stop()
        self._selector.unregister(self._wake_r)
        for fd in (self._wake_r, self._wake_w):
            os.close(fd)
        for path in shm.SHM_DIR.glob(instance_glob(self.instance)):
            shm.unlink(path.name)
        log.info("supervisor stopped")

    def start_services(self) -> None:
        for child in self.children.values():
            child.crashes.clear()
            self._spawn(child)

    def request_stop(self) -> None:
        self._stop = True

    def stop_services(self) -> None:
        """Stop every service and wait for each to be reaped (SIGKILL after stop_timeout)."""
        now = time.monotonic()
        stopping = [c for c in self.children.values() if c.proc is not None
                    and (c.state == "stopping" or c.proc.poll() is None)]
        for child in stopping:
            if child.state != "stopping":
                self._begin_stop(child, now)
        give_up = now + self.sv.stop_timeout + KILL_REAP_S
        while stopping:
            now = time.monotonic()
            stopping = [c for c in stopping if not self._advance_stop(c, now)]
            if stopping and now >= give_up:
                log.error("pids %s did not die after SIGKILL (uninterruptible I/O?); stopping without them",
                          [c.proc.pid for c in stopping if c.proc is not None])
                break
            if stopping:
                time.sleep(SHUTDOWN_TICK_S)
        for child in self.children.values():
            self._close_pipe(child)
            child.state = "stopped" if child.state != "failed" else "failed"

    # ------------------------------------------------------------------ control commands

    def status(self) -> dict[str, Any]:
        return self.report.status()

    def cmd_status(self, user: str = "") -> dict[str, Any]:
        return self.status()

    def cmd_restart(self, service: str, user: str = "") -> str:
        child = self.children.get(service)
        if child is None:
            raise MeterError(f"no service {service!r}; services: {', '.join(self.children)}")
        log.info("restart of %s requested by %s", service, user or "?")
        self._restart_requests.put(service)
        self._wake()
        return f"{service} restarting"

    def cmd_shutdown(self, user: str = "") -> str:
        log.info("shutdown requested by %s", user or "?")
        self._stop = True
        self._wake()
        return "stopping"

    def forward(self, cmd: str, args: dict[str, Any], user: str) -> Any:
        service, dot, rest = cmd.partition(".")
        if not dot or service not in self.children:
            raise MeterError(f"unknown command {cmd!r}; use status, restart, shutdown or <service>.<command> "
                             f"with a service among {', '.join(self.children)}")
        client = ControlClient(self.run_dir / f"{service}.sock", timeout_s=30.0, user=user)
        reply = client.request(rest, args)
        if not reply.get("ok"):
            raise ControlError(reply.get("error", "failed"), reply.get("kind", ""))
        return reply.get("result")


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"
