"""The meter's exception hierarchy.

It lives in the lowest layer (hal) so that every layer above can raise and catch the same
classes: ``MeterError`` -> ``ConfigError``, ``BusError``, ``ChipError``, ``MeterTimeoutError``,
``StorageError``, ``IPCError``, ``AccessDenied``.
"""


class MeterError(Exception):
    """Base of every error the meter raises on purpose."""


class ConfigError(MeterError):
    """A configuration or board file is invalid; the message names section, option and what is allowed."""


class BusError(MeterError):
    """A transport (SPI, serial, GPIO) failed or returned data that did not check out."""


class ChipError(MeterError):
    """The ADE9000 answered, but not as the datasheet says it should."""


class MeterTimeoutError(MeterError):
    """Something the meter waited for did not happen in time."""


class StorageError(MeterError):
    """Non-volatile storage could not be read or written."""


class IPCError(MeterError):
    """A shared-memory ring, snapshot or control socket could not be used."""


class AccessDenied(MeterError):
    """A command was refused (revenue lock, privilege, lockout); the message says why."""


class ComtradeError(ConfigError):
    """A COMTRADE recording (.cfg/.dat) is malformed or unusable; the message names the file and the problem."""
