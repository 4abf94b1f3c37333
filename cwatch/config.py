"""TOML config files parsed into dataclasses, shared by every component.

Python 3.8 compatible (the agent imports it). One rule for every file:
unknown keys and wrong types fail at load time with one line naming the file,
the section and the key. Any scalar key can be overridden from the environment
as CWATCH_<SECTION>_<KEY> (upper case), which is how secrets stay out of files.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
import typing
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple, Type, TypeVar
from urllib.parse import unquote, urlsplit

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on the agent's old Pythons
    import tomli as tomllib

T = TypeVar("T")
MAX_EXACT_INT = 2 ** 53
ENV_PREFIX = "CWATCH_"


class ConfigError(ValueError):
    """A config value that is missing, unknown or of the wrong type; str() is one line."""


def read_toml(path: Path) -> Dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        # tomllib reads UTF-8 only: Notepad's "ANSI" or UTF-16 files land here.
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8") \
            from None
    except RecursionError:
        raise ConfigError(f"{path}: values nested too deeply") from None


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp).replace("typing.", ""))


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check (and for env strings, convert) one value against a field's type."""
    origin = typing.get_origin(tp)
    if origin is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _coerce(value, args[0], where)
    if origin in (list, typing.List):
        (item_tp,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return [_coerce(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if isinstance(value, int) and abs(value) > MAX_EXACT_INT:
                raise ConfigError(f"{where}: {value} is too large")
            return float(value)
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            if abs(value) > MAX_EXACT_INT:  # TOML allows 64-bit; nothing here needs that
                raise ConfigError(f"{where}: {value} is too large")
            return value
    elif tp is str and isinstance(value, str):
        return value
    raise ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r}")


def _from_env(raw: str, tp: Any) -> Any:
    """Environment values are strings: read them as the field's scalar type."""
    base = [a for a in typing.get_args(tp) if a is not type(None)] or [tp]
    target = base[0] if typing.get_origin(tp) is typing.Union else tp
    if target is bool:
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        return raw
    if target in (int, float):
        try:
            return target(raw)
        except ValueError:
            return raw
    return raw


def build(cls: Type[T], data: Mapping[str, Any], source: str, section: str = "",
          env: Optional[Mapping[str, str]] = None) -> T:
    """Make dataclass `cls` from a TOML table, rejecting unknown keys and wrong types."""
    env = os.environ if env is None else env
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    label = f"[{section}] " if section else ""
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError("{}: {}unknown key {!r} (known: {})".format(
            source, label, unknown[0], ", ".join(sorted(fields))))
    values = {}  # type: Dict[str, Any]
    for name, field in fields.items():
        tp = hints[name]
        where = f"{source}: {label}{name}"
        if dataclasses.is_dataclass(tp):
            sub = data.get(name, {})
            if not isinstance(sub, dict):
                raise ConfigError(f"{where}: expected a table, got {sub!r}")
            values[name] = build(tp, sub, source, name if not section else section + "." + name,
                                 env)
            continue
        item_tp = _dataclass_items(tp)
        if item_tp is not None:  # an array of tables: [[alerts.recipients]]
            values[name] = _build_list(item_tp, data.get(name, []), source,
                                       f"{section}.{name}" if section else name, env)
            continue
        env_key = ENV_PREFIX + (section.replace(".", "_") + "_" if section else "") + name
        env_key = env_key.upper()
        if env_key in env:
            values[name] = _coerce(_from_env(env[env_key], tp), tp,
                                   f"{where} (from environment {env_key})")
        elif name in data:
            values[name] = _coerce(data[name], tp, where)
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{where}: missing required key")
    try:
        return cls(**values)
    except ValueError as exc:  # __post_init__ range checks
        raise ConfigError(f"{source}: {label}{exc}") from None


def _dataclass_items(tp: Any) -> Optional[Any]:
    """The item type of a List[SomeDataclass] field, else None."""
    if typing.get_origin(tp) in (list, typing.List):
        (item_tp,) = typing.get_args(tp)
        if dataclasses.is_dataclass(item_tp):
            return item_tp
    return None


def _build_list(item_tp: Any, tables: Any, source: str, section: str,
                env: Mapping[str, str]) -> List[Any]:
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise ConfigError(f"{source}: [[{section}]] must be an array of tables")
    # Entries are numbered from 1 as an operator counts them in the file; the
    # environment does not reach into them (no CWATCH_ key could name one).
    return [build(item_tp, table, source, f"{section} #{number}", env={})
            for number, table in enumerate(tables, start=1)]


def load(cls: Type[T], path: Optional[Path], overrides: Mapping[str, Mapping[str, Any]]) -> T:
    """Read the file (if any), apply command-line overrides (None = not given), build `cls`."""
    data = read_toml(path) if path else {}  # type: Dict[str, Any]
    for section, values in overrides.items():
        table = data.setdefault(section, {})
        if isinstance(table, dict):  # otherwise build() reports "expected a table"
            table.update({k: v for k, v in values.items() if v is not None})
    return build(cls, data, str(path) if path else "command line")


@dataclasses.dataclass(frozen=True)
class BrokerURL:
    """mqtt://[user:pass@]host[:port] or mqtts://... (TLS, default port 8883)."""

    host: str
    port: int
    tls: bool
    username: Optional[str] = None
    password: Optional[str] = None

    @classmethod
    def parse(cls, url: str) -> BrokerURL:
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise ValueError(f"broker URL {url!r}: {exc}") from None
        if parts.scheme not in ("mqtt", "mqtts"):
            raise ValueError(f"broker URL {url!r} must start with mqtt:// or mqtts://")
        if not parts.hostname:
            raise ValueError(f"broker URL {url!r} has no host")
        if parts.path not in ("", "/") or parts.query:
            raise ValueError(f"broker URL {url!r} must not have a path or query")
        tls = parts.scheme == "mqtts"
        return cls(
            host=parts.hostname,
            port=port if port is not None else (8883 if tls else 1883),
            tls=tls,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )


def parse_host_port(value: str, what: str) -> Tuple[str, int]:
    """'HOST:PORT' (or '[v6]:PORT') to a tuple; raises ValueError naming `what`.

    Port 0 is allowed: the operating system picks a free port (tests, the demo)."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"{what} {value!r} must be HOST:PORT")
    return host.strip("[]") or "0.0.0.0", int(port)


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|h|d)?$")
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def parse_duration(value: Any, what: str) -> float:
    """90, "90s", "30m", "2h", "1.5d" -> seconds; raises ValueError naming `what`."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return float(value)
    match = _DURATION.match(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"{what} {value!r} must be a duration like 90, \"30m\", \"2h\" "
                         "or \"1d\"")
    return float(match.group(1)) * _DURATION_UNITS[match.group(2)]
