"""The seal of the configuration: what the sealed sections (metrology and revenue settings) held at the last
saved change, kept beside the file as ``<file>.seal`` and rewritten by every ``ConfigStore.save``.

A hand edit of a sealed section changes the file but not the seal. ``ConfigStore.load`` finds it, and:

- while the revenue lock is engaged, the meter runs with the sealed values, not the edited ones (the edit
  does not take effect; ``meter run`` records a priority-255 ``config_tamper`` event and a refused history
  entry, and says so at every start until the file is restored or the lock is opened);
- while unlocked, the edit is taken as a change like any other: ``meter run`` saves it with a new version and
  a history entry by the user ``hand edit``.

The seal also keeps the revenue-lock switch file the configuration named, so a hand edit that points
``[upgrade] revenue_lock_file`` elsewhere does not unlock the meter: either file saying locked is locked.
A file with no seal yet (a meter from before seals, or a new one) is sealed as it is at the next start.

The seal is signed: an HMAC-SHA256 under this meter's seal key (``firmware.config.sealkey``, kept out of the
data directory), so editing the file and the seal together does not pass. A seal whose signature does not
verify (forged, damaged, another meter's) is not intact: while locked ``meter run`` records a
``config_tamper`` event at every start and does not accept the file as a change.
"""
from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from firmware.config.schema import Config
from firmware.config.sealkey import key_id, load_key
from firmware.storage.atomic import atomic_write

SEAL_SUFFIX = ".seal"


def seal_path(config_path: Path) -> Path:
    return config_path.with_name(config_path.name + SEAL_SUFFIX)


def sealed_values(config: Config) -> dict[str, dict[str, Any]]:
    """The values of every option the revenue lock protects (its rule says locked), by section."""
    out: dict[str, dict[str, Any]] = {}
    for sec in config.schema.sections:
        values = config.sections[sec.name].to_dict()
        kept = {o.name: values[o.name] for o in sec.options if sec.name != "meta" and sec.rule(o.name).locked}
        if kept:
            out[sec.name] = kept
    return out


def digest(values: dict[str, dict[str, Any]]) -> str:
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()


def _signature(key: bytes, version: int, sections: dict[str, dict[str, Any]], lock_file: str) -> str:
    body = json.dumps({"version": version, "sections": sections, "lock_file": lock_file}, sort_keys=True, default=str)
    return hmac.new(key, body.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Seal:
    version: int
    sha256: str
    sections: dict[str, dict[str, Any]]
    lock_file: str = ""
    hmac: str = ""                 # "" : written before seals were signed

    def intact(self) -> bool:
        """The seal is as this meter wrote it: signed with its key (an unsigned one passes only while the meter
        has no key yet, i.e. the seal predates signing)."""
        if digest(self.sections) != self.sha256:
            return False
        key = load_key()
        if key is None:
            return not self.hmac
        return bool(self.hmac) and hmac.compare_digest(
            self.hmac, _signature(key, self.version, self.sections, self.lock_file))


@dataclass
class Tamper:
    """Sealed options that differ between the file and its seal."""

    changes: list[dict[str, Any]]
    enforced: bool = False           # the sealed values are in force (the meter was locked)
    locked: bool = False             # the meter was revenue-locked when it was found
    seal: Seal | None = field(default=None, repr=False)

    @property
    def options(self) -> list[str]:
        return [c["option"] for c in self.changes]


def write_seal(config_path: Path, config: Config) -> None:
    values = sealed_values(config)
    lock_file = str(config["upgrade"].revenue_lock_file)
    key = load_key(create=True)
    assert key is not None
    data = {"version": config.version, "sha256": digest(values), "sections": values, "lock_file": lock_file,
            "hmac": _signature(key, config.version, json.loads(json.dumps(values, default=str)), lock_file),
            "key_id": key_id(key)}
    atomic_write(seal_path(config_path), (json.dumps(data, sort_keys=True, indent=1, default=str) + "\n").encode(),
                 mode=0o600)


def read_seal(config_path: Path) -> Seal | None:
    """The seal, or None when there is none; a seal that does not check out is returned as found (not intact)."""
    try:
        data = json.loads(seal_path(config_path).read_text())
        return Seal(int(data["version"]), str(data["sha256"]), dict(data["sections"]), str(data.get("lock_file", "")),
                    str(data.get("hmac", "")))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        return Seal(-1, "", {}, "")


def compare(config: Config, seal: Seal) -> list[dict[str, Any]]:
    """Sealed options whose value in ``config`` is not the sealed one."""
    now = sealed_values(config)
    changes = []
    for name, values in now.items():
        old = seal.sections.get(name, {})
        for key, value in values.items():
            if key not in old:
                continue                  # sealed since (a seal written before the option was locked)
            if json.dumps(old.get(key), default=str) != json.dumps(value, default=str):
                changes.append({"option": f"{name}.{key}", "sealed": old.get(key), "file": value})
    return changes


def with_sealed(config: Config, seal: Seal) -> Config:
    """``config`` with its sealed sections as the seal holds them."""
    document = config.to_dict()
    for name, values in seal.sections.items():
        node = document
        for part in name.split("."):
            node = node.setdefault(part, {})
        node.update(values)
    return config.schema.load(document, source="(sealed configuration)")
