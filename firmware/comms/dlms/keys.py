"""The meter's DLMS secrets and its invocation counter, kept in the data directory.

Secrets (``DATA_DIR/dlms/keys.json``, mode 0600): the LLS password of the management client, the global
unicast encryption key (EK) and authentication key (AK) of security suite 0 (AES-GCM-128), and the meter's
system title. Each is drawn from the operating system's random source the first time the meter serves DLMS,
so no two meters share them; ``meter dlms keys`` shows them to the meter's administrator, and nothing serves
them over a protocol.

The invocation counter of the meter's ciphered APDUs must never repeat under the same key (AES-GCM). The
counter file holds a bound that no counter handed out has reached: a block of ``RESERVE`` counters is reserved
(written and fsynced) before the first of them is used, and a start begins at the stored bound, so a restart
or a kill at any moment skips the unused rest of a block and never goes back.
"""
from __future__ import annotations

import json
import secrets
import string
import threading
from dataclasses import dataclass
from pathlib import Path

from firmware.storage.atomic import atomic_write
from hal.errors import ConfigError

SUBDIR = "dlms"
KEYS_FILE = "keys.json"
COUNTER_FILE = "invocation_counter"
RESERVE = 1000
MAX_COUNTER = 0xFFFFFFFF
MANUFACTURER = b"OMT"        # the three-letter manufacturer id that begins the system title
_PASSWORD_CHARS = string.ascii_letters + string.digits


@dataclass(frozen=True)
class Keys:
    lls_password: bytes
    ek: bytes
    ak: bytes
    system_title: bytes

    def as_text(self) -> dict[str, str]:
        return {"lls_password": self.lls_password.decode("ascii"), "ek": self.ek.hex(), "ak": self.ak.hex(),
                "system_title": self.system_title.hex()}


def directory(data_dir: str | Path) -> Path:
    return Path(data_dir) / SUBDIR


def _new() -> Keys:
    password = "".join(secrets.choice(_PASSWORD_CHARS) for _ in range(16)).encode("ascii")
    return Keys(password, secrets.token_bytes(16), secrets.token_bytes(16), MANUFACTURER + secrets.token_bytes(5))


def load_keys(data_dir: str | Path, create: bool = True) -> Keys:
    path = directory(data_dir) / KEYS_FILE
    try:
        raw = json.loads(path.read_text(encoding="ascii"))
    except FileNotFoundError:
        if not create:
            raise ConfigError(f"{path}: no DLMS keys yet; they are made when the comms service first serves "
                              "DLMS") from None
        keys = _new()
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        atomic_write(path, json.dumps(keys.as_text(), indent=1).encode("ascii"), mode=0o600)
        return keys
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: DLMS keys cannot be read: {exc}; restore the file or remove it to draw new "
                          "keys (every head-end must then be given them)") from None
    try:
        keys = Keys(raw["lls_password"].encode("ascii"), bytes.fromhex(raw["ek"]), bytes.fromhex(raw["ak"]),
                    bytes.fromhex(raw["system_title"]))
    except (KeyError, ValueError, AttributeError) as exc:
        raise ConfigError(f"{path}: DLMS keys malformed ({exc})") from None
    if len(keys.ek) != 16 or len(keys.ak) != 16 or len(keys.system_title) != 8 or not len(keys.lls_password) >= 1:
        raise ConfigError(f"{path}: DLMS keys of the wrong length (EK and AK 16 bytes, system title 8)")
    return keys


class InvocationCounter:
    """The meter's invocation counter: ``next()`` never returns a value twice, across restarts and kills."""

    def __init__(self, data_dir: str | Path, reserve: int = RESERVE) -> None:
        self.path = directory(data_dir) / COUNTER_FILE
        self.reserve = reserve
        self.lock = threading.Lock()
        try:
            self.value = int(self.path.read_text(encoding="ascii").strip() or "0")
        except FileNotFoundError:
            self.value = 0
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{self.path}: the DLMS invocation counter cannot be read ({exc}); it must never "
                              "go back, so the meter will not cipher until it is restored") from None
        self.bound = self.value

    def next(self) -> int:
        with self.lock:
            self.value += 1
            if self.value > MAX_COUNTER:
                raise ConfigError("the DLMS invocation counter is exhausted: new keys are needed")
            if self.value >= self.bound:
                self.bound = min(self.value + self.reserve, MAX_COUNTER + 1)
                self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                atomic_write(self.path, f"{self.bound}\n".encode("ascii"), mode=0o600)
            return self.value
