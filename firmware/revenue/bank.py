"""One set of energy and demand registers: the billing set, or the test-mode set."""
from __future__ import annotations

from typing import Any

from firmware.revenue.demandset import DemandSet
from firmware.revenue.settings import RevenueSettings
from metrology.registers import EnergyBank


class Bank:
    """Energy and demand registers: the billing set, or the test-mode set."""

    def __init__(self, s: RevenueSettings) -> None:
        self.energy = EnergyBank()
        self.demand = DemandSet(s.method, s.interval_s, s.subinterval_s, s.sync)

    def state(self) -> dict[str, Any]:
        return {"energy": self.energy.state(), "demand": self.demand.state()}

    def restore(self, state: dict[str, Any]) -> None:
        self.energy = EnergyBank.from_state(state.get("energy", []))
        self.demand.restore(state.get("demand", {}))
