"""How settings classes are read: field types, coercion, YAML files, flags, and YAML out.

The settings themselves live in ``config.py``; this module knows only the shapes a
field can have: ``bool``, ``int``, ``float`` (always finite), ``str``, a ``Literal``
choice, ``list[...]`` of those (a YAML list or a comma-separated string), each
optionally ``| None``. Nested dataclasses are sections (``data:``, ``train:``...).
"""

from __future__ import annotations

import difflib
import math
import types
import typing
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Literal

from ..errors import ForecastError, redact, shorten

MAX_STRING = 500  # longer text settings are a typo or an attack; MLflow caps tags and params too
MAX_ALIASES = 100  # YAML aliases in one file: settings need a few; a "billion laughs" needs many


def option(default: Any, doc: str) -> Any:
    """A dataclass field carrying its help text; lists get a fresh copy per instance."""
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"help": doc})
    return field(default=default, metadata={"help": doc})


def flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def require(ok: bool, name: str, value: Any, rule: str) -> None:
    if not ok:
        shown = ",".join(map(str, value)) if isinstance(value, list) else value
        raise ForecastError(f"{flag_name(name)} {rule}, got {shorten(redact(shown) if isinstance(shown, str) else shown)}")


@dataclass(frozen=True)
class FieldType:
    """The shape of one setting: its scalar type, allowed values, list-ness and optionality."""

    scalar: type
    choices: tuple | None = None
    is_list: bool = False
    optional: bool = False

    @property
    def metavar(self) -> str:
        name = "|".join(self.choices) if self.choices and not self.is_list else self.scalar.__name__.upper()
        return f"{name},..." if self.is_list else name

    def describe(self) -> str:
        """Allowed values, for --help."""
        if self.choices:
            return ("comma-separated, any of: " if self.is_list else "one of: ") + ", ".join(self.choices)
        return "comma-separated" if self.is_list else ""


def field_type(cls: type, name: str) -> FieldType:
    tp = typing.get_type_hints(cls)[name]
    optional = False
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        optional, tp = True, args[0]
    is_list = typing.get_origin(tp) is list
    if is_list:
        tp = typing.get_args(tp)[0]
    if typing.get_origin(tp) is Literal:
        return FieldType(str, tuple(typing.get_args(tp)), is_list, optional)
    return FieldType(tp, None, is_list, optional)


def _scalar(name: str, value: Any, ft: FieldType) -> Any:
    tp = ft.scalar
    if isinstance(value, (list, tuple, dict, set)):   # never str() of a nested value: it may be huge
        raise ForecastError(f"{flag_name(name)} takes one value{' per item' if ft.is_list else ''}, got {shorten(value)}")
    if tp is bool:
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("true", "yes", "1", "on"):
            return True
        if str(value).lower() in ("false", "no", "0", "off"):
            return False
    elif tp in (int, float):
        try:
            if isinstance(value, bool) or (tp is int and isinstance(value, float) and not value.is_integer()):
                raise ValueError
            number = tp(value)
        except (TypeError, ValueError, OverflowError):
            pass
        else:
            if tp is float and not math.isfinite(number):
                raise ForecastError(f"{flag_name(name)} must be a finite number, got {shorten(value)}")
            return number
    else:
        text = str(value).strip() if ft.choices else str(value)
        if ft.choices and text not in ft.choices:
            close = difflib.get_close_matches(text, ft.choices, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ForecastError(f"{flag_name(name)} must be one of {', '.join(ft.choices)}, got {shorten(value)}{hint}")
        if len(text) > MAX_STRING:
            raise ForecastError(f"{flag_name(name)} is {len(text)} characters long; at most {MAX_STRING} allowed")
        return text
    raise ForecastError(f"{flag_name(name)} must be of type {tp.__name__}, got {shorten(value)}")


def coerce(name: str, value: Any, ft: FieldType) -> Any:
    """A YAML or flag value -> the field's type; a one-line error naming the flag otherwise."""
    if value is None or (ft.optional and isinstance(value, str) and value.lower() in ("", "none", "null")):
        if ft.optional:
            return None
        raise ForecastError(f"{flag_name(name)} needs a value")
    if ft.is_list:
        items = value.split(",") if isinstance(value, str) else value if isinstance(value, (list, tuple)) else [value]
        return [_scalar(name, item, ft) for item in items if str(item).strip() != ""]
    if isinstance(value, (list, dict)):
        raise ForecastError(f"{flag_name(name)} takes one value, got {shorten(value)}")
    return _scalar(name, value, ft)


def section_fields(cls: type) -> list:
    """The nested sections of a settings class (fields whose type is itself a dataclass)."""
    hints = typing.get_type_hints(cls)
    return [f for f in fields(cls) if is_dataclass(hints[f.name])]


def scalar_fields(cls: type) -> list:
    """The fields of a settings class that are values (not nested sections)."""
    sections = {f.name for f in section_fields(cls)}
    return [f for f in fields(cls) if f.name not in sections]


def section_defaults(cls: type, name: str) -> Any:
    """The default instance of a section: a command may change its defaults (diagnose: lookback 50)."""
    return next(f for f in fields(cls) if f.name == name).default_factory()


def _unknown_key(key: str, valid: list[str], where: str) -> ForecastError:
    close = difflib.get_close_matches(str(key)[:100], valid, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else f" (valid: {', '.join(valid)})"
    return ForecastError(f"unknown key {shorten(key)} in {where}{hint}")


def build(cls: type, values: dict[str, Any], where: str = "config") -> Any:
    """Build (nested) settings from a dict; unknown keys raise naming the key."""
    if not isinstance(values, dict):
        raise ForecastError(f"{where} must be a mapping of keys to values, got {shorten(values)}")
    sections = {f.name: f for f in section_fields(cls)}
    scalars = {f.name: f for f in scalar_fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if key in sections:
            base = section_defaults(cls, key)
            if not isinstance(value or {}, dict):
                raise ForecastError(f"{where} section {key!r} must be a mapping of keys to values, got {shorten(value)}")
            merged = {f.name: getattr(base, f.name) for f in fields(base)} | (value or {})
            kwargs[key] = build(type(base), merged, f"{where} section {key!r}")
        elif key in scalars:
            kwargs[key] = coerce(key, value, field_type(cls, key))
        else:
            raise _unknown_key(key, list(sections) + list(scalars), where)
    return cls(**kwargs)


class _TooManyAliases(Exception):
    pass


def _safe_load(text: str) -> Any:
    """``yaml.safe_load``, refusing a file with more than ``MAX_ALIASES`` aliases while it is composed,
    before any value is built: nested aliases (a "billion laughs") make a value of billions of items
    from a few lines, which any code that walks it (a message, a check) would expand."""
    import yaml

    class Loader(yaml.SafeLoader):
        aliases = 0

        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                self.aliases += 1
                if self.aliases > MAX_ALIASES:
                    raise _TooManyAliases
            return super().compose_node(parent, index)

    loader = Loader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def load_yaml(path: str | Path) -> dict[str, Any]:
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ForecastError(f"config file {str(path)!r} not found; see configs/ for examples")
    try:
        loaded = _safe_load(path.read_text(encoding="utf-8")) or {}
    except _TooManyAliases:
        raise ForecastError(f"config file {str(path)!r} uses more than {MAX_ALIASES} YAML aliases (*name); "
                            f"settings need a few at most: write the values out") from None
    except UnicodeDecodeError:
        raise ForecastError(f"config file {str(path)!r} is not UTF-8 text; save it as UTF-8") from None
    except OSError as err:
        raise ForecastError(f"config file {str(path)!r} cannot be read ({err.strerror})") from None
    except yaml.YAMLError as err:
        line = getattr(getattr(err, "problem_mark", None), "line", None)
        at = f" at line {line + 1}" if line is not None else ""
        problem = str(getattr(err, "problem", None) or err).splitlines()[0][:80]   # never the file's text
        raise ForecastError(f"config file {str(path)!r} is not valid YAML{at}: {problem}") from None
    if not isinstance(loaded, dict):
        raise ForecastError(f"config file {str(path)!r} must hold a mapping (key: value), not {type(loaded).__name__}")
    return loaded


def owners(cls: type) -> dict[str, str]:
    """Flag name -> the section holding it (top-level fields map to themselves)."""
    out = {f.name: "" for f in scalar_fields(cls)}
    for s in section_fields(cls):
        if s.metadata.get("yaml_only"):
            continue
        out |= {f.name: s.name for f in scalar_fields(type(section_defaults(cls, s.name)))}
    return out


def resolve(cls: type, yaml_path: str | Path | None, flags: dict[str, Any]) -> Any:
    """defaults < YAML file < flags. ``flags`` maps field name -> value given on the command line."""
    values = load_yaml(yaml_path) if yaml_path else {}
    where = f"config file {str(yaml_path)!r}" if yaml_path else "config"
    if values:
        build(cls, values, where)  # the file's own keys first, so that errors name the file
    merged = {k: dict(v) if isinstance(v, dict) else v for k, v in values.items()}
    section_of = owners(cls)
    for name, value in flags.items():
        section = section_of.get(name, "")
        if section:
            merged[section] = {**(merged.get(section) or {}), name: value}
        else:
            merged[name] = value
    return build(cls, merged, where)


def to_dict(config: Any) -> dict[str, Any]:
    """Nested plain dict, the layout of the YAML files."""
    from dataclasses import asdict

    return asdict(config)


def to_yaml(config: Any) -> str:
    """The resolved settings as YAML that ``--config`` reads back to the same settings:
    top-level keys first, then one block per section; lists on one line. A URL's password is
    masked (``user:***@host``): this text is printed and saved; give the password to the database
    client another way (e.g. ``PGPASSWORD``, ``~/.pgpass``) or again by flag."""
    import yaml

    class Dumper(yaml.SafeDumper):
        pass

    Dumper.add_representer(list, lambda d, v: d.represent_sequence("tag:yaml.org,2002:seq", v, flow_style=True))
    values = {k: _masked(v) for k, v in to_dict(config).items()}
    sections = {f.name for f in section_fields(type(config))}
    ordered = {k: v for k, v in values.items() if k not in sections} | {k: values[k] for k in values if k in sections}
    return yaml.dump(ordered, Dumper=Dumper, sort_keys=False, default_flow_style=False)


def to_flat_dict(config: Any, prefix: str = "") -> dict[str, Any]:
    """``{"data.lookback": 30, ...}``: MLflow params (lists joined by commas; a URL's password masked)."""
    out: dict[str, Any] = {}
    for f in fields(config):
        value = getattr(config, f.name)
        if is_dataclass(value):
            out.update(to_flat_dict(value, f"{prefix}{f.name}."))
        else:
            out[f"{prefix}{f.name}"] = _masked(",".join(map(str, value)) if isinstance(value, list) else value)
    return out


def _masked(value: Any) -> Any:
    """A settings value with the password of any URL in it masked (sections and lists inside too)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v) for v in value]
    return value
