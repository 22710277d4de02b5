"""Loading and atomically saving the configuration file, with a version and a history of who changed what.

Every save validates the whole new configuration first (the schema, then the owners' own checks,
``firmware.config.checks``), bumps ``[meta] version``, records ``changed_by``/``changed_at``, writes the file
atomically, rewrites its seal (``firmware.config.seal``) and appends one line per saved change to
``<file>.history.jsonl`` (version, time, user, reason, and each changed option with its old and new value).
``load`` compares the sealed sections with the seal and, while the revenue lock is engaged, keeps the sealed
values in force (``ConfigStore.tamper`` says what differed).
"""
from __future__ import annotations

import datetime as _dt
import json
import logging
import threading
import tomllib
from pathlib import Path
from typing import Any, Callable, Mapping

import tomli_w

from firmware.config import meter_schema
from firmware.config.checks import check_whole
from firmware.config.schema import Config, Schema
from firmware.config.seal import Tamper, compare, read_seal, with_sealed, write_seal
from firmware.security.authorize import blocked_by_revenue_lock
from firmware.storage.atomic import append_durable, atomic_write
from hal.errors import AccessDenied, ConfigError

log = logging.getLogger("config")
# The file holds secrets (BACnet, e-mail, MQTT passwords): owner only, whatever the process's umask.
FILE_MODE = 0o600
HISTORY_MAX_BYTES = 1 << 20        # meter.toml.history.jsonl: the newest half is kept past this
SECRET = "(secret)"                # what the history, the web and the protocols show of a secret option


def parse_toml_file(path: Path, what: str = "config") -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{what} {path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{what} {path}: cannot be read: {exc}") from None
    return parse_toml(text, f"{what} {path}")


# TOML nests arrays and inline tables without limit, and Python's int() refuses more than 4300 digits
# (sys.int_info.default_max_str_digits): both reach tomllib as RecursionError/ValueError, not TOMLDecodeError.
def parse_toml(text: str, where: str) -> dict[str, Any]:
    """A TOML document; ConfigError (never a traceback) for anything tomllib cannot take."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: not valid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{where}: not usable TOML: arrays or tables nested too deeply") from None
    except ValueError as exc:
        raise ConfigError(f"{where}: not usable TOML: {exc} (a number far larger than any option allows?)") \
            from None


def load_file(path: str | Path, schema: Schema | None = None) -> Config:
    """Validate a configuration file; a missing file is an error (use ConfigStore for 'defaults if absent')."""
    schema = schema or meter_schema()
    p = Path(path)
    return schema.load(parse_toml_file(p, schema.what), source=str(p))


def file_version(path: str | Path) -> int | None:
    """``[meta] version`` of the configuration file as it is on disk now (None: no file, or not readable TOML).

    Only the version is read, not validated: what ``meter status`` and the diagnostics page show while the
    running services may still hold an older version."""
    try:
        meta = parse_toml_file(Path(path)).get("meta", {})
    except ConfigError:
        return None
    version = meta.get("version") if isinstance(meta, dict) else None
    return version if isinstance(version, int) and not isinstance(version, bool) else None


def diff(old: Config, new: Config) -> list[dict[str, Any]]:
    changes: list[dict[str, Any]] = []
    for sec in new.schema.sections:
        if sec.name == "meta":
            continue
        a, b = old.sections[sec.name].to_dict(), new.sections[sec.name].to_dict()
        for key in b:
            if a.get(key) != b[key]:
                if sec.option(key).secret:     # the history says a secret changed, never what it is
                    changes.append({"option": f"{sec.name}.{key}", "old": SECRET, "new": SECRET})
                else:
                    changes.append({"option": f"{sec.name}.{key}", "old": a.get(key), "new": b[key]})
    return changes


class ConfigStore:
    """The meter's configuration file on disk. Absent file: defaults (the meter runs with no file)."""

    def __init__(self, path: str | Path, schema: Schema | None = None,
                 locked: Callable[[Config], bool] | None = None) -> None:
        """``locked(current_config)`` tells whether the revenue lock is engaged (default: firmware.lockstate)."""
        self.path = Path(path)
        self.schema = schema or meter_schema()
        self.history_path = self.path.with_name(self.path.name + ".history.jsonl")
        self.locked = locked
        self.tamper: Tamper | None = None
        self._saving = threading.RLock()   # one change at a time per process (a protocol may retry a write)

    def load(self) -> Config:
        """The configuration in force: the file, except sealed sections edited by hand while locked."""
        self.tamper = None
        if not self.path.exists():
            return self.schema.defaults()
        config = load_file(self.path, self.schema)
        seal = read_seal(self.path)
        if seal is None:
            return config
        changes = compare(config, seal) if seal.intact() else [{"option": "(seal)", "sealed": "does not verify",
                                                                   "file": "?"}]
        if not changes:
            return config
        locked = self._is_locked(config) or (bool(seal.lock_file) and _switch_locked(seal.lock_file))
        self.tamper = Tamper(changes, enforced=locked and seal.intact(), locked=locked, seal=seal)
        if self.tamper.enforced:
            log.error("configuration: sealed options edited by hand while revenue-locked; the sealed values stay "
                      "in force", extra={"fields": {"options": self.tamper.options}})
            return with_sealed(config, seal)
        return config

    def record_refused_hand_edit(self, tamper: Tamper) -> None:
        now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        entry = {"version": tamper.seal.version if tamper.seal else -1, "time": now, "user": "hand edit",
                 "reason": "sealed options edited by hand", "refused": "revenue lock", "changes": tamper.changes}
        self._history(json.dumps(entry, sort_keys=True, default=str))

    def seal_now(self, config: Config) -> None:
        """Seal the file as it is (a meter whose file has no seal yet)."""
        write_seal(self.path, config)

    def save(self, document: Mapping[str, Any], user: str, reason: str = "",
             hand_edit: list[dict[str, Any]] | None = None) -> Config:
        """Validate ``document`` (nested TOML-shaped dict), bump the version and write it atomically."""
        if not user:
            raise ConfigError("config: a change must name the user who made it")
        with self._saving:
            return self._save(document, user, reason, hand_edit)

    def _save(self, document: Mapping[str, Any], user: str, reason: str,
              hand_edit: list[dict[str, Any]] | None) -> Config:
        old = self.load()
        candidate = self.schema.load(_without_meta(document), source="(new configuration)")
        check_whole(candidate)
        changes = diff(old, candidate)
        now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        # every option whose rule says locked: billing data, the revenue lock itself, the logs
        sealed = [c["option"] for c in changes if self.schema.rule(c["option"]).locked]
        if sealed and blocked_by_revenue_lock("config_set_sealed") and self._is_locked(old):
            entry = {"version": old.version, "time": now, "user": user, "reason": reason, "refused": "revenue lock",
                     "changes": changes}
            self._history(json.dumps(entry, sort_keys=True))
            log.warning("configuration change refused: revenue lock", extra={"fields": {"user": user,
                                                                                     "options": sealed}})
            raise AccessDenied(f"config: {', '.join(sealed)} cannot be changed while the meter is revenue-locked "
                               "(they affect billing data, the lock or the logs); open the revenue-lock switch first")
        out = candidate.to_dict(only_changed=True)
        out["meta"] = {"version": old.version + 1, "changed_by": user, "changed_at": now}
        data = tomli_w.dumps(_meta_first(out)).encode()
        new = self.schema.load(tomllib.loads(data.decode()), source=str(self.path))
        atomic_write(self.path, data, mode=FILE_MODE)
        write_seal(self.path, new)
        entry = {"version": new.version, "time": now, "user": user, "reason": reason, "changes": changes}
        if hand_edit:
            entry["hand_edit"] = hand_edit     # what the file held against its seal
        self._history(json.dumps(entry, sort_keys=True, default=str))
        log.info("configuration saved", extra={"fields": {"version": new.version, "user": user,
                                                          "changes": len(changes), "reason": reason}})
        return new

    def _history(self, line: str) -> None:
        """Append one history entry; past HISTORY_MAX_BYTES the oldest entries go (the newest half is kept), so
        a stream of saves (a protocol writing a setting in a loop) cannot fill the disk."""
        append_durable(self.history_path, (line + "\n").encode(), FILE_MODE)
        if self.history_path.stat().st_size <= HISTORY_MAX_BYTES:
            return
        lines = self.history_path.read_bytes().splitlines(keepends=True)
        kept, size = [], 0
        for entry in reversed(lines):
            size += len(entry)
            if size > HISTORY_MAX_BYTES // 2:
                break
            kept.append(entry)
        atomic_write(self.history_path, b"".join(reversed(kept)), mode=FILE_MODE)
        log.info("configuration history: %d oldest entries dropped (over %d bytes)", len(lines) - len(kept),
                 HISTORY_MAX_BYTES)

    def _is_locked(self, current: Config) -> bool:
        if self.locked is not None:
            return self.locked(current)
        from firmware.lockstate import revenue_locked

        return revenue_locked(current)

    def update(self, changes: Mapping[str, Mapping[str, Any]], user: str, reason: str = "") -> Config:
        """Change some options (``{"modbus": {"tcp_port": 5021}}``) and save."""
        with self._saving:
            return self._update(changes, user, reason)

    def _update(self, changes: Mapping[str, Mapping[str, Any]], user: str, reason: str) -> Config:
        document = self.load().to_dict(only_changed=True)
        for section, values in changes.items():
            node = document
            for part in section.split("."):
                node = node.setdefault(part, {})
            node.update(values)
        return self.save(document, user, reason)

    def history(self) -> list[dict[str, Any]]:
        if not self.history_path.exists():
            return []
        return [json.loads(line) for line in self.history_path.read_text().splitlines() if line.strip()]


def _switch_locked(lock_file: str) -> bool:
    from firmware.lockstate import file_lock_state

    return file_lock_state(lock_file)


def _without_meta(document: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in document.items() if k != "meta"}


def _meta_first(document: dict[str, Any]) -> dict[str, Any]:
    return {"meta": document["meta"], **{k: v for k, v in document.items() if k != "meta"}}
