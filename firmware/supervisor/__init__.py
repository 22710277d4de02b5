"""The supervisor (``loop``) and what it reports of the meter (``report``)."""
from firmware.supervisor.loop import HANG_MARGIN_S, IDLE_CHECK_S, Supervisor

__all__ = ["HANG_MARGIN_S", "IDLE_CHECK_S", "Supervisor"]
