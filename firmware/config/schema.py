"""Declarative, typed, bounded configuration schema.

A schema is a list of ``Section`` objects, each a list of ``Option`` objects whose ``kind``
parses and bounds one value. Loading a TOML document through a schema gives a frozen
``Config``; anything unknown, mistyped or out of range raises ``ConfigError`` with a
message that names the section, the option and what is allowed, in the manner of:

    config: [modbus] option 'tcp_port': 70000 is out of range; allowed 1..65535

The same tables generate ``docs/configuration.md`` (``tools.gendocs``).
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Mapping, Sequence

from hal.errors import ConfigError

# --------------------------------------------------------------------------- kinds


class Kind:
    """Parses one raw TOML value into a Python value, or raises ValueError with the reason."""

    def parse(self, raw: Any) -> Any:
        raise NotImplementedError

    def allowed(self) -> str:
        """Human text for what is allowed, used in errors and docs."""
        raise NotImplementedError

    def to_toml(self, value: Any) -> Any:
        """The value as it would be written back to TOML."""
        return value


def _is_int(raw: Any) -> bool:
    return isinstance(raw, int) and not isinstance(raw, bool)


@dataclass(frozen=True)
class Int(Kind):
    min: int
    max: int

    def parse(self, raw: Any) -> int:
        if not _is_int(raw):
            raise ValueError(f"{raw!r} is not an integer; allowed {self.allowed()}")
        if not self.min <= raw <= self.max:
            raise ValueError(f"{raw!r} is out of range; allowed {self.allowed()}")
        return int(raw)

    def allowed(self) -> str:
        return f"{self.min}..{self.max}"


@dataclass(frozen=True)
class Float(Kind):
    min: float
    max: float

    def parse(self, raw: Any) -> float:
        if isinstance(raw, bool) or not isinstance(raw, (int, float)):
            raise ValueError(f"{raw!r} is not a number; allowed {self.allowed()}")
        value = float(raw)
        if value != value or not self.min <= value <= self.max:
            raise ValueError(f"{raw!r} is out of range; allowed {self.allowed()}")
        return value

    def allowed(self) -> str:
        return f"{self.min:g}..{self.max:g}"


@dataclass(frozen=True)
class Bool(Kind):
    def parse(self, raw: Any) -> bool:
        if not isinstance(raw, bool):
            raise ValueError(f"{raw!r} is not a boolean; allowed true or false")
        return raw

    def allowed(self) -> str:
        return "true or false"


@dataclass(frozen=True)
class Str(Kind):
    max_len: int = 255
    pattern: str | None = None
    pattern_text: str = ""

    def parse(self, raw: Any) -> str:
        if not isinstance(raw, str):
            raise ValueError(f"{raw!r} is not a string; allowed {self.allowed()}")
        if len(raw) > self.max_len:
            raise ValueError(f"{raw!r} is longer than {self.max_len} characters")
        if self.pattern is not None and not re.fullmatch(self.pattern, raw):
            raise ValueError(f"{raw!r} is not valid; allowed {self.allowed()}")
        return raw

    def allowed(self) -> str:
        what = self.pattern_text or (f"matching {self.pattern}" if self.pattern else "any text")
        return f"{what}, at most {self.max_len} characters"


@dataclass(frozen=True)
class Enum(Kind):
    choices: tuple[str, ...]

    def __init__(self, *choices: str) -> None:
        object.__setattr__(self, "choices", tuple(choices))

    def parse(self, raw: Any) -> str:
        if raw not in self.choices:
            raise ValueError(f"{raw!r} is not one of the allowed values; allowed {self.allowed()}")
        return str(raw)

    def allowed(self) -> str:
        return ", ".join(repr(c) for c in self.choices)


@dataclass(frozen=True)
class IPAddress(Kind):
    """A literal IPv4 or IPv6 address (no host names), as the meters' own setup menus require."""

    version: int | None = None

    def parse(self, raw: Any) -> str:
        if not isinstance(raw, str):
            raise ValueError(f"{raw!r} is not an IP address; allowed {self.allowed()}")
        try:
            address = ipaddress.ip_address(raw)
        except ValueError:
            raise ValueError(f"{raw!r} is not an IP address; allowed {self.allowed()}") from None
        if self.version is not None and address.version != self.version:
            raise ValueError(f"{raw!r} is not an IPv{self.version} address")
        return str(address)

    def allowed(self) -> str:
        if self.version == 4:
            return "a dotted-quad IPv4 address such as 192.168.1.10"
        return "an IPv4 or IPv6 address such as 192.168.1.10 or ::1"


_DURATION_UNITS_S = {"ms": 0.001, "s": 1.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION_RE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s|min|h|d)\s*")


@dataclass(frozen=True)
class Duration(Kind):
    """A duration in seconds, written as a number of seconds or as text: "250 ms", "15 min", "2 h"."""

    min_s: float
    max_s: float

    def parse(self, raw: Any) -> float:
        if isinstance(raw, bool):
            raise ValueError(f"{raw!r} is not a duration; allowed {self.allowed()}")
        if isinstance(raw, (int, float)):
            seconds = float(raw)
        elif isinstance(raw, str):
            m = _DURATION_RE.fullmatch(raw)
            if not m:
                raise ValueError(
                    f"{raw!r} is not a duration; write a number of seconds or e.g. '15 min' "
                    f"(units ms, s, min, h, d); allowed {self.allowed()}"
                )
            seconds = float(m.group(1)) * _DURATION_UNITS_S[m.group(2)]
        else:
            raise ValueError(f"{raw!r} is not a duration; allowed {self.allowed()}")
        if not self.min_s <= seconds <= self.max_s:
            raise ValueError(f"{raw!r} is out of range; allowed {self.allowed()}")
        return seconds

    def allowed(self) -> str:
        return f"{_fmt_s(self.min_s)}..{_fmt_s(self.max_s)}"


def _fmt_s(seconds: float) -> str:
    for unit in ("d", "h", "min", "s"):
        size = _DURATION_UNITS_S[unit]
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g} {unit}"
    return f"{seconds:g} s"


@dataclass(frozen=True)
class ListOf(Kind):
    """A TOML array of values of one kind, with bounds on its length."""

    item: Kind
    min_len: int = 0
    max_len: int = 1000

    def parse(self, raw: Any) -> tuple[Any, ...]:
        if not isinstance(raw, list):
            raise ValueError(f"{raw!r} is not a list; allowed a list of {self.allowed()}")
        if not self.min_len <= len(raw) <= self.max_len:
            raise ValueError(f"the list has {len(raw)} items; allowed {self.min_len}..{self.max_len} items")
        out = []
        for i, item in enumerate(raw):
            try:
                out.append(self.item.parse(item))
            except ValueError as exc:
                raise ValueError(f"item {i}: {exc}") from None
        return tuple(out)

    def allowed(self) -> str:
        return f"{self.min_len}..{self.max_len} items, each {self.item.allowed()}"

    def to_toml(self, value: Any) -> Any:
        return [self.item.to_toml(v) for v in value]


@dataclass(frozen=True)
class Table(Kind):
    """An array of tables (``[[section.name]]``), each checked against its own options."""

    options: tuple[Option, ...]
    max_len: int = 1000

    def parse(self, raw: Any) -> tuple[ConfigSection, ...]:
        if not isinstance(raw, list) or not all(isinstance(r, dict) for r in raw):
            raise ValueError("is not an array of tables; write it as [[section.option]] blocks")
        if len(raw) > self.max_len:
            raise ValueError(f"has {len(raw)} entries; allowed at most {self.max_len}")
        out = []
        for i, entry in enumerate(raw):
            try:
                out.append(_parse_options(self.options, entry, f"entry {i}"))
            except ValueError as exc:
                raise ValueError(f"entry {i}: {exc}") from None
        return tuple(out)

    def allowed(self) -> str:
        return f"up to {self.max_len} entries with options " + ", ".join(o.name for o in self.options)

    def to_toml(self, value: Any) -> Any:
        return [entry.to_dict() for entry in value]


# --------------------------------------------------------------------------- schema


# Who may change an option (docs/security.md, "Configuration options"): the privilege a user needs, on top of
# which ``locked`` options are refused while the revenue lock is engaged, and ``local`` ones (a file, directory or
# program on the meter: a path set from the network could point anywhere) are changed only on the meter itself,
# by root or the meter's account (``meter config set``). ``secret`` values are never read back.
CONFIG_PRIVILEGES = ("setup", "security", "master")


@dataclass(frozen=True)
class Option:
    name: str
    kind: Kind
    default: Any
    doc: str
    unit: str = ""
    privilege: str = ""          # "": the section's
    locked: bool = False         # refused while revenue-locked: billing data, the lock itself, the logs
    local: bool = False          # never over the network (master, on the meter only)
    secret: bool = False         # never returned by a read (web, protocols)

    def __post_init__(self) -> None:
        if self.privilege and self.privilege not in CONFIG_PRIVILEGES:
            raise AssertionError(f"option {self.name!r}: privilege {self.privilege!r} is not one of "
                                 f"{CONFIG_PRIVILEGES}")
        # A default that its own kind refuses is a programming error: fail at import.
        try:
            self.kind.parse(self.kind.to_toml(self.default) if isinstance(self.kind, (ListOf, Table))
                            else self.default)
        except ValueError as exc:
            raise AssertionError(f"default of option {self.name!r} is invalid: {exc}") from None


@dataclass(frozen=True)
class Section:
    """One TOML table. ``name`` may be dotted ("modbus.rtu") for a nested table.

    A ``sealed`` section holds metrology or revenue settings: every option of it is ``locked`` (refused while
    the meter's revenue lock is engaged). ``privilege`` is what its options need unless they say otherwise.
    """

    name: str
    options: tuple[Option, ...]
    doc: str = ""
    sealed: bool = False
    privilege: str = "setup"

    def __init__(self, name: str, options: Iterable[Option], doc: str = "", sealed: bool = False,
                 privilege: str = "setup") -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "options", tuple(options))
        object.__setattr__(self, "doc", doc)
        object.__setattr__(self, "sealed", sealed)
        object.__setattr__(self, "privilege", privilege)
        names = [o.name for o in self.options]
        if len(set(names)) != len(names):
            raise AssertionError(f"section [{name}] defines an option twice")
        if privilege not in CONFIG_PRIVILEGES:
            raise AssertionError(f"section [{name}]: privilege {privilege!r} is not one of {CONFIG_PRIVILEGES}")

    def option(self, name: str) -> Option:
        for opt in self.options:
            if opt.name == name:
                return opt
        raise KeyError(name)

    def rule(self, name: str) -> Rule:
        """Who may change option ``name`` of this section, and when."""
        opt = self.option(name)
        privilege = "master" if opt.local else opt.privilege or self.privilege
        return Rule(f"{self.name}.{name}", privilege, self.sealed or opt.locked, opt.local, opt.secret)


@dataclass(frozen=True)
class Rule:
    """The effective change rule of one option (``Section.rule``)."""

    option: str                  # "section.option"
    privilege: str               # "setup", "security" or "master"
    locked: bool                 # refused while revenue-locked
    local: bool                  # changed only on the meter itself, never over the network
    secret: bool                 # never read back

    def text(self) -> str:
        """As docs and refusals say it: ``security, revenue-locked, on the meter only``."""
        parts = [self.privilege] + (["revenue-locked"] if self.locked else []) + (
            ["on the meter only"] if self.local else []) + (["secret"] if self.secret else [])
        return ", ".join(parts)


class ConfigSection(Mapping[str, Any]):
    """The parsed, read-only values of one section: attribute and item access."""

    __slots__ = ("_values",)

    def __init__(self, values: dict[str, Any]) -> None:
        object.__setattr__(self, "_values", dict(values))

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("configuration is read-only; change it through ConfigStore.save()")

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"ConfigSection({self._values!r})"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in self._values.items():
            if isinstance(value, tuple) and value and isinstance(value[0], ConfigSection):
                out[key] = [v.to_dict() for v in value]
            elif isinstance(value, tuple):
                out[key] = list(value)
            else:
                out[key] = value
        return out


def _parse_options(options: Sequence[Option], raw: Mapping[str, Any], where: str) -> ConfigSection:
    known = {o.name: o for o in options}
    for key in raw:
        if key not in known:
            raise ValueError(
                f"option '{key}' is not valid in {where}; valid options: {', '.join(known) or '(none)'}"
            )
    values = {}
    for opt in options:
        if opt.name in raw:
            try:
                values[opt.name] = opt.kind.parse(raw[opt.name])
            except ValueError as exc:
                raise ValueError(f"option '{opt.name}': {exc}") from None
        else:
            values[opt.name] = (
                opt.kind.parse(opt.kind.to_toml(opt.default))
                if isinstance(opt.kind, (ListOf, Table)) else opt.default
            )
    return ConfigSection(values)


@dataclass
class Config:
    """A whole, validated configuration: ``cfg.section("modbus").tcp_port`` or ``cfg["modbus"].tcp_port``."""

    sections: dict[str, ConfigSection]
    schema: Schema = field(repr=False)

    def section(self, name: str) -> ConfigSection:
        return self.sections[name]

    def __getitem__(self, name: str) -> ConfigSection:
        return self.sections[name]

    def __getattr__(self, name: str) -> ConfigSection:
        # Attribute access for undotted section names: cfg.modbus.tcp_port
        sections = self.__dict__.get("sections", {})
        if name in sections:
            return sections[name]
        raise AttributeError(name)

    @property
    def version(self) -> int:
        return int(self.sections["meta"].version) if "meta" in self.sections else 0

    def to_dict(self, only_changed: bool = False) -> dict[str, Any]:
        """Nested dict ready for TOML; with only_changed, options equal to their default are left out."""
        out: dict[str, Any] = {}
        for sec in self.schema.sections:
            values = self.sections[sec.name].to_dict()
            if only_changed:
                values = {
                    k: v for k, v in values.items()
                    if sec.name == "meta" or v != sec.option(k).kind.to_toml(sec.option(k).default)
                }
                if not values:
                    continue
            node = out
            for part in sec.name.split("."):
                node = node.setdefault(part, {})
            node.update(values)
        return out


class Schema:
    def __init__(self, sections: Iterable[Section], what: str = "config") -> None:
        self.sections = tuple(sections)
        self.what = what
        self._by_name = {s.name: s for s in self.sections}
        if len(self._by_name) != len(self.sections):
            raise AssertionError("two sections share a name")

    def section(self, name: str) -> Section:
        return self._by_name[name]

    def rule(self, option: str) -> Rule:
        """The change rule of ``"section.option"`` (KeyError for an unknown one)."""
        section, _, name = option.rpartition(".")
        return self._by_name[section].rule(name)

    def rules(self) -> list[Rule]:
        return [sec.rule(o.name) for sec in self.sections if sec.name != "meta" for o in sec.options]

    def load(self, document: Mapping[str, Any], source: str = "") -> Config:
        """Validate a parsed TOML document; raise ConfigError naming the first problem found."""
        prefix = f"{self.what}" + (f" {source}" if source else "")
        raw_sections: dict[str, dict[str, Any]] = {}
        self._split(document, "", raw_sections, prefix)
        values = {}
        for sec in self.sections:
            try:
                values[sec.name] = _parse_options(sec.options, raw_sections.get(sec.name, {}),
                                                  f"section [{sec.name}]")
            except ValueError as exc:
                raise ConfigError(f"{prefix}: [{sec.name}] {exc}") from None
        return Config(values, self)

    def defaults(self) -> Config:
        return self.load({})

    def _split(self, node: Mapping[str, Any], path: str, out: dict[str, dict[str, Any]], prefix: str) -> None:
        """Walk nested tables, assigning each key to the deepest known section that owns it."""
        for key, value in node.items():
            full = f"{path}.{key}" if path else key
            if isinstance(value, dict) and full in self._by_name:
                out.setdefault(full, {})
                self._split_section(value, full, out, prefix)
            elif isinstance(value, dict) and any(n.startswith(full + ".") for n in self._by_name):
                self._split(value, full, out, prefix)
            elif not path:
                known = ", ".join(s.name for s in self.sections)
                raise ConfigError(f"{prefix}: section [{full}] is not known; known sections: {known}")
            else:
                raise ConfigError(f"{prefix}: section [{full}] is not known")

    def _split_section(self, value: Mapping[str, Any], name: str, out: dict[str, dict[str, Any]],
                       prefix: str) -> None:
        sec = self._by_name[name]
        option_names = {o.name for o in sec.options}
        for key, item in value.items():
            child = f"{name}.{key}"
            if key not in option_names and isinstance(item, dict) and child in self._by_name:
                out.setdefault(child, {})
                self._split_section(item, child, out, prefix)
            else:
                out[name][key] = item

    def markdown(self, title: str, intro: str, generator: str) -> str:
        """Reference documentation for every section and option."""
        lines = [f"# {title}", "", f"<!-- Generated by `{generator}` from the schema; do not edit. -->", "",
                 intro, ""]
        for sec in self.sections:
            lines += [f"## [{sec.name}]", ""]
            if sec.doc:
                lines += [sec.doc, ""]
            if sec.sealed:
                lines += ["Sealed: changes are refused while the revenue lock is engaged.", ""]
            lines += ["| option | default | allowed | unit | who may change it | description |",
                      "|---|---|---|---|---|---|"]
            for opt in sec.options:
                default = opt.kind.to_toml(opt.default)
                shown = "(secret)" if opt.secret and default else f"`{_md_value(default)}`"
                who = sec.rule(opt.name).text() if sec.name != "meta" else "the meter"
                lines.append(
                    f"| `{opt.name}` | {shown} | {opt.kind.allowed()} | {opt.unit} | {who} | {opt.doc} |"
                )
            lines.append("")
        return "\n".join(lines)


def _md_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return "[" + ", ".join(_md_value(v) for v in value) + "]" if len(str(value)) < 60 else "[…]"
    return str(value)
