"""Run a supervisor with the given test services: ``python -m tests.support.run_supervisor CONFIG RUN_DIR NAME...``."""
from __future__ import annotations

import sys
from pathlib import Path

from firmware.config.store import ConfigStore
from firmware.logsetup import configure_logging
from firmware.services.registry import ServiceSpec
from firmware.supervisor import Supervisor


def main() -> int:
    config_path, run_dir, *names = sys.argv[1:]
    config = ConfigStore(config_path).load()
    configure_logging(config, "supervisor", config.meter.data_dir)
    specs = [ServiceSpec(name, "tests.support.ticker_service", "test ticker", essential=(i == 0))
             for i, name in enumerate(names)]
    return Supervisor(config, Path(config_path), Path("boards/sim.toml"), specs, run_dir=Path(run_dir)).run()


if __name__ == "__main__":
    sys.exit(main())
