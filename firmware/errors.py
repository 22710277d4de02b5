"""Re-export of the exception hierarchy for code in firmware/ (defined in hal.errors)."""
from hal.errors import (
    AccessDenied,
    BusError,
    ChipError,
    ConfigError,
    IPCError,
    MeterError,
    MeterTimeoutError,
    StorageError,
)

__all__ = [
    "AccessDenied", "BusError", "ChipError", "ConfigError", "IPCError", "MeterError",
    "MeterTimeoutError", "StorageError",
]
