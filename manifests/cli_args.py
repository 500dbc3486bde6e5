"""argparse types every console script shares: bad numbers, ports and KEY=VALUE pairs are usage errors (exit 2,
one line)."""
from __future__ import annotations

import argparse
import math
from typing import Callable


def number(kind: type, minimum: float, strict: bool = False, what: str | None = None) -> Callable[[str], float]:
    """An argparse type: a finite ``kind`` (int or float) >= ``minimum`` (> when ``strict``). The error says
    ``'TEXT' is not WHAT`` when ``what`` is given, else what is expected ("a whole number >= 1")."""
    noun = "a whole number" if kind is int else "a number"

    def parse(text: str):
        try:
            value = kind(text.strip())
        except ValueError:
            value = None
        if value is None or not math.isfinite(value) or value < minimum or (strict and value == minimum):
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}" if what else
                                             f"expects {noun} {'>' if strict else '>='} {minimum:g}, got {text!r}")
        return value
    return parse


positive = number(int, 1)  # a count of 1 or more


def key_value(form: str = "KEY=VALUE", empty_value: bool = False) -> Callable[[str], tuple[str, str]]:
    """An argparse type: text split at its first '=' into (key, value), the key never empty, the value only with
    ``empty_value``. ``form`` is what the error says is expected ("SPLIT=PATH")."""

    def parse(text: str) -> tuple[str, str]:
        key, sep, value = text.partition("=")
        if not sep or not key or not (value or empty_value):
            raise argparse.ArgumentTypeError(f"expects {form}, got {text!r}")
        return key, value
    return parse


def port(text: str) -> int:
    """An argparse type: a TCP port (0: any free one)."""
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"expects a port 0-65535, got {text!r}")
    return int(text)
