"""Text cleaning for titles, descriptions, captions and tags (the raw values are kept beside the clean ones)."""
from __future__ import annotations

import html
import re
import unicodedata

# Zero-width and invisible formatting characters seen in the crawled text (U+200B in BigSoundBank titles).
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad\u180e"), None)
_TAG = re.compile(r"<[^<>]*>")
# Control characters other than whitespace (NUL, escape, C1 controls) carry no text: each becomes a space.
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]")
# A lone surrogate (JSON "\ud800" escapes decode to one) is not text and cannot be written as UTF-8.
SURROGATE = re.compile(r"[\ud800-\udfff]")
NORMAL_FORMS = ("NFC", "NFKC")


def clean_text(text: str | None, form: str = "NFC") -> str:
    """Unescape HTML entities, drop HTML tags, Unicode-normalise, remove zero-width characters, turn control
    characters into spaces and lone surrogates into U+FFFD, collapse whitespace (tabs, CR/LF and the sites'
    double spaces) and trim. ``None`` gives ""."""
    if form not in NORMAL_FORMS:
        raise ValueError(f"unknown Unicode form {form!r} (use one of {NORMAL_FORMS})")
    if not text:
        return ""
    # Unescape first so that escaped markup (&lt;br&gt;) is removed too, then once more for double escapes.
    text = _TAG.sub(" ", html.unescape(text))
    text = _TAG.sub(" ", html.unescape(text))
    text = unicodedata.normalize(form, SURROGATE.sub("\ufffd", text)).translate(_INVISIBLE)
    return " ".join(_CONTROL.sub(" ", text).split())


def clean_tags(tags: list[str] | None, form: str = "NFC") -> list[str]:
    """Cleaned tags, blanks dropped, first occurrence of each kept in order."""
    out: list[str] = []
    for t in tags or []:
        t = clean_text(str(t), form)
        if t and t not in out:
            out.append(t)
    return out


def missing_metadata(title: str, description: str, require_both: bool = False) -> str:
    """The text filter of every entry point (``run``, ``import-published``, ``folder``): "" when a sound's cleaned
    text passes, else the reason ("no title and no description"). The paper's rule, the default, keeps a sound
    with a title or a description; ``require_both`` keeps only sounds with both."""
    missing = [name for name, v in (("title", title), ("description", description)) if not v]
    if len(missing) == 2 or (missing and require_both):
        return "no " + " and no ".join(missing)
    return ""
