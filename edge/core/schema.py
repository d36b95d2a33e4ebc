"""One strict schema for every data file: the dataclasses themselves.

``load(cls, data, where)`` turns a parsed TOML table into ``cls`` and refuses anything the
dataclass does not declare: an unknown key is an error naming the file, the key and the
closest valid key; a wrong type names what was expected. Nothing only warns.
"""

from __future__ import annotations

import dataclasses
import functools
import sys
import types
import typing
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

from edge.core.errors import ConfigError

T = TypeVar("T")


def load(cls: type[T], data: Any, where: str, *, partial: bool = False) -> T:
    """Build ``cls`` from ``data``; with ``partial`` only check keys and types (no defaults needed)."""
    return _convert(cls, data, where, "", partial)


def to_dict(record: Any) -> Any:
    """The inverse of ``load``: plain dicts and lists, ready for JSON or TOML."""
    if dataclasses.is_dataclass(record):
        return {f.name: to_dict(getattr(record, f.name)) for f in dataclasses.fields(record)}
    if isinstance(record, (list, tuple)):
        return [to_dict(v) for v in record]
    if isinstance(record, dict):
        return {k: to_dict(v) for k, v in record.items()}
    return record


def _type_name(tp: Any) -> str:
    if get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    return getattr(tp, "__name__", str(tp))


def _fail(where: str, key: str, message: str, hint: str | None = None) -> ConfigError:
    at = f" key '{key}'" if key else ""
    return ConfigError(f"{where}:{at} {message}", hint=hint)


def _convert(tp: Any, value: Any, where: str, key: str, partial: bool) -> Any:
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        options = [a for a in get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _convert(options[0], value, where, key, partial)
    if origin is Literal:
        if value not in get_args(tp):
            import difflib

            close = difflib.get_close_matches(str(value), [str(a) for a in get_args(tp)], n=1)
            hint = f"did you mean '{close[0]}'?" if close else None
            raise _fail(where, key, f"must be {_type_name(tp)}, got {value!r:.80}", hint)
        return value
    if origin is list:
        if not isinstance(value, list):
            raise _fail(where, key, f"must be a list, got {type(value).__name__}")
        (item,) = get_args(tp)
        return [_convert(item, v, where, f"{key}[{i}]", partial) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise _fail(where, key, f"must be a table, got {type(value).__name__}")
        _, item = get_args(tp)
        return {k: _convert(item, v, where, f"{key}.{k}", partial) for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return _convert_record(tp, value, where, key, partial)
    if tp is Any:
        return value
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        if abs(value) > sys.float_info.max:  # JSON integers have no bound; a float has
            raise _fail(where, key, f"must be float, got an integer too large for one: {value!r:.40}")
        return float(value)
    if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
        raise _fail(where, key, f"must be {_type_name(tp)}, got {type(value).__name__} {value!r:.80}")
    return value


@functools.lru_cache(maxsize=None)
def _hints(cls: Any) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _convert_record(cls: Any, value: Any, where: str, key: str, partial: bool) -> Any:
    if not isinstance(value, dict):
        raise _fail(where, key, f"must be a table, got {type(value).__name__}")
    hints = _hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    prefix = f"{key}." if key else ""
    for name in value:
        if name not in fields:
            import difflib

            close = difflib.get_close_matches(name, list(fields), n=1, cutoff=0.5)
            hint = f"did you mean '{prefix}{close[0]}'?" if close else f"valid keys: {', '.join(fields)}"
            # Said here, not by _fail, so that even an empty key is named: key '' is not a known key.
            raise ConfigError(f"{where}: key '{prefix}{name}' is not a known key", hint=hint)
    out = {}
    for name, field in fields.items():
        if name in value:
            out[name] = _convert(hints[name], value[name], where, prefix + name, partial)
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            if not partial:
                raise _fail(where, prefix + name, "is required but missing")
    return out if partial else cls(**out)
