"""The ``[upgrade]`` options as one plain object shared by the installer, the guard and the service."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from firmware.config import Config, meter_schema


@dataclass(frozen=True)
class UpgradeSettings:
    root: Path
    state_dir: Path
    trust_store: Path
    board: str = "sim"
    health_deadline_s: float = 120.0
    health_poll_s: float = 1.0
    max_trial_boots: int = 2
    free_space_margin: int = 16 * 1024 * 1024
    revenue_lock_file: Path = Path("var/revenue_lock")
    log_depth: int = 2000
    run_dir: Path = Path("var/run")          # [meter] run_dir: where the running meter publishes its lock
    system_site_packages: bool = False

    @classmethod
    def from_config(cls, config: Config | None = None) -> "UpgradeSettings":
        config = config or meter_schema().defaults()
        u = config.upgrade
        return cls(Path(u.root), Path(u.state_dir), Path(u.trust_store), u.board, u.health_deadline,
                   u.health_poll, u.max_trial_boots, u.free_space_margin, Path(u.revenue_lock_file),
                   u.log_depth, Path(config.meter.run_dir), u.system_site_packages)

    @classmethod
    def under(cls, base: str | Path, **overrides: object) -> "UpgradeSettings":
        """Everything below one directory (development machines and tests)."""
        base = Path(base)
        values: dict[str, object] = {"root": base, "state_dir": base / "state", "trust_store": base / "trust",
                                     "revenue_lock_file": base / "revenue_lock", "run_dir": base / "run"}
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]
