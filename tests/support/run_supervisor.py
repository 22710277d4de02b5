"""Run a supervisor with the given test services: ``python -m tests.support.run_supervisor CONFIG RUN_DIR NAME...``.

A NAME runs ``tests.support.ticker_service``; ``NAME=MODULE`` runs another service module under that name.
The first service is essential.
"""
from __future__ import annotations

import sys
from pathlib import Path

from firmware.config.store import ConfigStore
from firmware.logsetup import configure_logging
from firmware.services.registry import ServiceSpec
from firmware.supervisor import Supervisor

DEFAULT_MODULE = "tests.support.ticker_service"


def main() -> int:
    config_path, run_dir, *names = sys.argv[1:]
    config = ConfigStore(config_path).load()
    configure_logging(config, "supervisor", config.meter.data_dir)
    specs = []
    for i, arg in enumerate(names):
        name, _, module = arg.partition("=")
        specs.append(ServiceSpec(name, module or DEFAULT_MODULE, f"test service {module or DEFAULT_MODULE}",
                                 essential=(i == 0)))
    return Supervisor(config, Path(config_path), Path("boards/sim.toml"), specs, run_dir=Path(run_dir)).run()


if __name__ == "__main__":
    sys.exit(main())
