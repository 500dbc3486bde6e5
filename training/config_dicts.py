"""Model configuration dataclasses <-> the JSON dicts of run configs and checkpoints, derived from their fields.

Every model config (``FrontendConfig``, ``Cnn14Config``, ``HTSATConfig``, ``TextConfig``, ``AudioConfig``,
``ProjectionConfig``, ``CLAPConfig``) inherits ``DictConfig``: ``from_dict`` refuses keys that are not fields
(a typo would otherwise be lost), builds nested config dataclasses from their dicts and turns JSON lists into
tuples where a field is a tuple; ``to_dict`` writes every field back, nested ones included. Both follow the
fields, so a field added to a config (or a new encoder's sub-config) is read and written without more code.
"""
from __future__ import annotations

import copy
import typing
from dataclasses import fields, is_dataclass
from functools import lru_cache


def checked_keys(cls, d: dict, prefix: str = "") -> dict:
    """A copy of config dict `d`, refusing keys that are not fields of dataclass `cls` (typos would be lost).
    ``prefix``: where `d` sits in a larger config (``"data."``), for the message."""
    if not isinstance(d, dict):
        raise ValueError(f"{prefix.rstrip('.') or cls.__name__}: expected a JSON object, got {type(d).__name__}")
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown keys {[prefix + k for k in unknown]}; known: {sorted(names)}")
    return dict(d)


@lru_cache(maxsize=None)
def _field_types(cls) -> dict[str, object]:
    return typing.get_type_hints(cls)


def _is_tuple(hint) -> bool:
    """A field typed tuple[...] (or tuple[...] | None)."""
    if typing.get_origin(hint) is tuple:
        return True
    return any(typing.get_origin(h) is tuple for h in typing.get_args(hint))


class DictConfig:
    """``from_dict`` / ``to_dict`` for a config dataclass, derived from its fields (see the module docstring)."""

    @classmethod
    def from_dict(cls, d: dict):
        d = checked_keys(cls, d)
        hints = _field_types(cls)
        for name, value in d.items():
            hint = hints[name]
            if isinstance(hint, type) and is_dataclass(hint) and issubclass(hint, DictConfig):
                d[name] = value if isinstance(value, hint) else hint.from_dict(value)
            elif _is_tuple(hint) and isinstance(value, list):
                d[name] = tuple(value)
        return cls(**d)

    def to_dict(self) -> dict:
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, DictConfig):
                value = value.to_dict()
            elif isinstance(value, tuple):
                value = list(value)
            else:
                value = copy.deepcopy(value)
            out[f.name] = value
        return out
