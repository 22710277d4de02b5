"""``meter run`` (the whole meter in the foreground) and ``meter status``."""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from firmware import extensions
from firmware.config.board import load_board
from firmware.config.store import ConfigStore
from firmware.control import ControlClient
from firmware.health import EXIT_STATUS, LOSS_WINDOW_S, NOT_HEALTHY
from firmware.logsetup import configure_logging

DEFAULT_CONFIG = os.environ.get("METER_CONFIG", "var/meter.toml")
DEFAULT_BOARD = os.environ.get("METER_BOARD_FILE", "boards/sim.toml")


STATUS_HELP = f"""\
Ask the running meter, over its control socket, what runs and whether it meters.

The meter is healthy when every service runs and the measurement snapshot is fresh;
degraded when it is so but lost samples within the last {LOSS_WINDOW_S:g} s (frames the
acquisition could not read in time, or sample blocks metrology fell behind on);
not healthy otherwise.

exit status:
  {EXIT_STATUS['healthy']}  healthy
  {EXIT_STATUS['degraded']}  degraded: running and metering, but losing samples
  {EXIT_STATUS['not healthy']}  not healthy, or the meter could not be asked (not running, bad option)
"""


def register(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser("run", help="start the whole meter (supervisor and every service) in the foreground")
    r.add_argument("--config", default=DEFAULT_CONFIG,
                   help="configuration file (default %(default)s; absent: every option at its default)")
    r.add_argument("--board", default=DEFAULT_BOARD, help="board file (default %(default)s)")
    r.add_argument("--run-dir", default=None, help="directory for sockets (default: [meter] run_dir)")
    r.add_argument("--only", default=None, help="comma-separated services to start (default: all enabled)")
    r.set_defaults(func=_run)

    s = sub.add_parser("status", help="show the running meter's services and health",
                       formatter_class=argparse.RawDescriptionHelpFormatter, description=STATUS_HELP)
    s.add_argument("--config", default=DEFAULT_CONFIG)
    s.add_argument("--run-dir", default=None)
    s.add_argument("--json", action="store_true",
                   help="print the status object (state, lost_frames_per_min, last_gap, services ...)")
    s.set_defaults(func=_status)


def _run(args: argparse.Namespace) -> int:
    from firmware.services.registry import enabled_services
    from firmware.supervisor import Supervisor

    store = ConfigStore(args.config)
    config = store.load()
    board = Path(args.board)
    load_board(board)  # refuse a bad board file before any service starts
    data_dir = Path(config.meter.data_dir)
    configure_logging(config, "supervisor", data_dir)
    config = check_seal(store, config)
    _security_checklist(config)
    for stale in extensions.check():
        logging.getLogger("supervisor").warning("stale C extension %s", stale)
    services = enabled_services(config)
    if args.only:
        wanted = {s.strip() for s in args.only.split(",") if s.strip()}
        unknown = wanted - {s.name for s in services}
        if unknown:
            raise SystemExit(f"meter run: --only names unknown services {sorted(unknown)}; "
                             f"available: {', '.join(s.name for s in services)}")
        services = [s for s in services if s.name in wanted]
    supervisor = Supervisor(config, Path(args.config), board, services,
                            run_dir=Path(args.run_dir) if args.run_dir else None, on_ready=_print_ready)
    return supervisor.run()


def check_seal(store: ConfigStore, config: Any) -> Any:
    """At start: seal a file that has none; record and report a hand edit of sealed sections (firmware.config.seal)."""
    from firmware.config.seal import read_seal
    from firmware.security.audit import SecurityAudit

    if not store.path.exists():
        return config
    if store.tamper is None:
        if read_seal(store.path) is None:
            store.seal_now(config)
        return config
    tamper = store.tamper
    audit = SecurityAudit.from_config(config, source="config")
    try:
        if tamper.enforced:
            message = (f"{store.path}: {', '.join(tamper.options)} edited by hand while the meter is revenue-locked; "
                       "the sealed values stay in force. Restore the file, or open the revenue lock and change them "
                       "with `meter config set`")
            print(f"meter run: {message}", file=sys.stderr)
            audit.record("config_tamper", "hand edit", message, {"changes": tamper.changes})
            store.record_refused_hand_edit(tamper)
            return config
        if tamper.locked:
            # the seal does not verify (forged, damaged, another key): there are no sealed values to trust, so the
            # file's are in force, but they are not accepted as a change and the tamper is reported every start
            message = (f"{store.path}.seal does not verify against this meter's seal key while the meter is "
                       "revenue-locked (the file and its seal edited together, or the seal damaged); the file is "
                       "not accepted as a change. Restore both files, or open the revenue lock and save the "
                       "configuration (`meter config set`) to seal it again")
            print(f"meter run: {message}", file=sys.stderr)
            audit.record("config_tamper", "hand edit", message, {"changes": tamper.changes})
            store.record_refused_hand_edit(tamper)
            return config
        audit.record("config_hand_edit", "hand edit", f"{', '.join(tamper.options)} edited by hand (unlocked): "
                     "saved as a new version", {"changes": tamper.changes})
        return store.save(store.load().to_dict(only_changed=True), user="hand edit",
                          reason="sealed options edited by hand, found at start while unlocked",
                          hand_edit=tamper.changes)
    finally:
        audit.close()


def _security_checklist(config: Any) -> None:
    """Say at every start what the security checklist holds (the factory password, SPEC §8), once: the log
    writes to the console as well."""
    from firmware.security.users import UserStore

    users = UserStore.from_config(config)
    try:
        for warning in users.checklist():
            logging.getLogger("security").warning("%s", warning)
    finally:
        users.close()


def _print_ready(supervisor: Any) -> None:
    status = supervisor.status()
    lines = ["", f"meter {status['version']} running (configuration version {status['config_version']})",
             f"  control socket  {status['control_socket']}   (meter status, meter config ...)"]
    for name, svc in status["services"].items():
        where = ", ".join(svc["endpoints"]) or "-"
        lines.append(f"  {name:12s} {svc['state']:8s} pid {svc['pid'] or '-':<7} {where}")
    lines.append("Press Ctrl-C to stop.")
    print("\n".join(lines), flush=True)


def _config_versions(status: dict[str, Any]) -> str:
    """``10`` or, when changes were saved since the meter started, ``10 (started with v1)``."""
    now, started = status["config_version"], status.get("config_started_version", status["config_version"])
    return f"{now}" if now == started else f"{now} (started with v{started})"


def _status(args: argparse.Namespace) -> int:
    config = ConfigStore(args.config).load()
    run_dir = Path(args.run_dir or config.meter.run_dir)
    status = ControlClient(run_dir / "control.sock").call("status")
    state = status["state"]
    if args.json:
        print(json.dumps(status, indent=2))
        return EXIT_STATUS[state]
    print(f"meter {status['version']}  config v{_config_versions(status)}  "
          f"{'NOT HEALTHY' if state == NOT_HEALTHY else state}  up {status['uptime_s']:.0f} s")
    loss = _loss_line(status)
    if loss:
        print(f"  {'sample loss':12s} {loss}")
    for name, svc in status["services"].items():
        extra = f"  last exit: {svc['last_exit']}" if svc["last_exit"] else ""
        print(f"  {name:12s} {svc['state']:8s} pid {svc['pid'] or '-':<7} restarts {svc['restarts']:<3} "
              f"{', '.join(svc['endpoints'])}{extra}")
    unread = status.get("events_unread")
    if unread:
        print(f"  {'events':12s} {unread} unread in the event log (the web's Event log page marks them read)")
    for warning in status.get("security_checklist", []):
        print(f"  {'security':12s} {warning}")
    return EXIT_STATUS[state]


def _loss_line(status: dict[str, Any]) -> str:
    parts = []
    if status["lost_frames_per_min"] is not None:
        parts.append(f"{status['lost_frames_per_min']} frames lost in the last {LOSS_WINDOW_S:g} s")
    if status["overruns_per_min"]:
        parts.append(f"metrology overruns {status['overruns_per_min']} in the last {LOSS_WINDOW_S:g} s")
    gap = status["last_gap"]
    if gap:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(gap["unix_s"]))
        parts.append(f"last gap {when} ({max(0.0, time.time() - gap['unix_s']):.0f} s ago), {gap['frames']} frames")
    elif parts:
        parts.append("no gap since the meter started")
    return "; ".join(parts)


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use the meter command")
