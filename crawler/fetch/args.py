"""argparse types shared by `wt5k-fetch` and `wt5k-weights` (bad numbers are usage errors, exit 2)."""
from __future__ import annotations

import argparse


def number(kind: type, minimum: float, strict: bool = False):
    """An argparse type: an int or float >= minimum (> minimum when strict)."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or value < minimum or (strict and value == minimum):
            raise argparse.ArgumentTypeError(f"expects a number {'>' if strict else '>='} {minimum}, got {text!r}")
        return value
    return parse
