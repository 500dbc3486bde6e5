"""The caption rule of the paper (its Table 4 ablation): the text paired with a sound's audio.

- ``title_description``: ``"{title}. {description}"``; a sound with only one of the two gets that one alone.
- ``description``: the description alone; a title-only sound gets its title.
- ``manifest``: a manifest's caption column as it is (training and evaluation only: curation builds captions).

Rows with neither title nor description (AudioCaps, Clotho: captions written by annotators) always use their
caption column, whatever the mode.
"""
from __future__ import annotations

from typing import Protocol

CAPTION_MODES = ("title_description", "description", "manifest")
# Curation writes the caption column, so it can only build one from title and description.
BUILD_MODES = CAPTION_MODES[:2]


class Captioned(Protocol):
    title: str
    description: str
    caption: str


def check_mode(mode: str, allowed: tuple[str, ...] = CAPTION_MODES) -> str:
    if mode not in allowed:
        raise ValueError(f"unknown caption mode {mode!r} (use one of {', '.join(allowed)})")
    return mode


def make_caption(title: str, description: str, mode: str = "title_description") -> str:
    """The caption built from a title and a description (see the module docstring).

    Falls back to whichever of the two exists, so that a row is never captioned by an empty string;
    curation decides separately whether rows lacking one of them are kept.
    """
    check_mode(mode, BUILD_MODES)
    title, description = title.strip(), description.strip()
    if mode == "description":
        return description or title
    # 203 BigSoundBank rows repeat the title as description: "Foo. Foo" would only double the words.
    if title and description and title.rstrip(".").casefold() != description.rstrip(".").casefold():
        return f"{title.rstrip('.')}. {description}"
    return description or title


def caption_for(row: Captioned, mode: str) -> str:
    """The text paired with a manifest row's audio under a caption mode."""
    check_mode(mode)
    if mode == "manifest" or not (row.title.strip() or row.description.strip()):
        return row.caption
    return make_caption(row.title, row.description, mode)
