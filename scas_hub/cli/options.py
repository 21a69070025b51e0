"""Command-line flags generated from config dataclasses: the configs are the one source of options.

A config field declares its flag in `dataclasses.field(metadata=...)`, as TRL's `SFTConfig` does:

- `help`: the flag's help; `{default}` in it is replaced by the field's default, written as a
  user types it (so the default is stated once, in the field);
- `flag`: the flag's name when it is not `--<field-name>` (e.g. `--lambda` for `lam`);
- `dest`: the argparse dest when it is not the field's name (e.g. `student_revision` for a
  `StudentConfig.revision`, beside a command's own `--revision`);
- `metavar`, `choices`: as for argparse; `range`: `(low, high)` for an integer in that range;
- `negatable`: a bool flag with its `--no-` form (else a bool is a plain switch);
- `append`: a repeatable flag whose values are comma lists (`--x a,b --x c`).

`add_config_flags` turns fields into argparse arguments with that help, default, type and choices.
Only the standard library is imported here: building the parser loads no torch.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

_TYPES: dict[str, type] = {"int": int, "float": float, "str": str}


def int_in(low: int, high: int) -> Callable[[str], int]:
    """argparse type: an integer in `[low, high]` (a huge number is a typo, and would overflow later)."""

    def integer(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid integer value: {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text} is not in [{low}, {high}]")
        return value

    return integer


def show_default(value: Any) -> str:
    """A default as a user would type it: `3` for 3.0, `1e-5` for 1e-05."""
    if isinstance(value, float):
        return re.sub(r"e([+-])0*(\d)", lambda m: f"e{'' if m[1] == '+' else '-'}{m[2]}", format(value, "g"))
    return str(value)


def config_field(config: type, name: str) -> dataclasses.Field:
    """The dataclass field `name` of `config` (KeyError naming the config if there is none)."""
    for f in dataclasses.fields(config):
        if f.name == name:
            return f
    raise KeyError(f"{config.__name__} has no field {name!r}")


def field_default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def flag_of(f: dataclasses.Field) -> str:
    """The field's command-line flag."""
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def help_of(f: dataclasses.Field) -> str:
    """The field's help with `{default}` filled in."""
    return f.metadata["help"].replace("{default}", show_default(field_default(f)))


def _value_type(annotation: object) -> type | None:
    parts = {p.strip() for p in str(annotation).split("|")} - {"None"}
    return _TYPES.get(next(iter(parts))) if len(parts) == 1 else None


def _is_bool(annotation: object) -> bool:
    """`bool` or `bool | None`: a switch (a path-or-bool field such as `score_cache` takes a value)."""
    return {p.strip() for p in str(annotation).split("|")} - {"None"} == {"bool"}


def add_config_flags(
    group: argparse._ActionsContainer,
    config: type,
    names: Sequence[str],
    *,
    unset: bool = False,
    dests: Mapping[str, str] | None = None,
    flags: Mapping[str, str] | None = None,
    helps: Mapping[str, str] | None = None,
    choices: Mapping[str, Sequence[str]] | None = None,
    aliases: Mapping[str, Sequence[str]] | None = None,
    required: Collection[str] = (),
) -> None:
    """Add one flag per field `names` of the dataclass `config` to `group`, in that order.

    Args:
        unset: the flags default to None ("not given"), so the caller builds the config from the
            flags a user set and the config's own defaults fill the rest (their help says them).
        dests, flags, helps, choices: per field, another argparse dest, flag, help or choices than the field's
            (one command spells a flag its own way, e.g. `--train-seed` beside a selection `--seed`).
        aliases: per field, more flags for it after its own (e.g. `evaluate`'s `--subset`).
        required: the fields whose flag a command cannot run without (argparse's `required`).
    """
    for name in names:
        f = config_field(config, name)
        meta = f.metadata
        default = None if unset else field_default(f)
        kwargs: dict[str, Any] = {
            "dest": (dests or {}).get(name) or meta.get("dest", name),
            "help": (helps or {}).get(name) or help_of(f),
        }
        value_type = _value_type(f.type)
        if _is_bool(f.type):
            if meta.get("negatable"):  # --x / --no-x
                kwargs.update(action=argparse.BooleanOptionalAction, default=default)
            else:
                kwargs.update(action="store_true")
        else:
            kwargs["default"] = default
            if meta.get("append"):
                kwargs["action"] = "append"
            elif "range" in meta:
                kwargs["type"] = int_in(*meta["range"])
            elif value_type not in (None, str):
                kwargs["type"] = value_type
        for key in ("metavar", "choices"):
            if key in meta:
                kwargs[key] = meta[key]
        if choices and name in choices:
            kwargs["choices"] = list(choices[name])
        if name in required:
            kwargs["required"] = True
        flag = (flags or {}).get(name) or flag_of(f)
        action = group.add_argument(flag, *(aliases or {}).get(name, ()), **kwargs)
        action.config_field = (config, name, unset)  # type: ignore[attr-defined]  # what tests hold the flag to
