"""What a file is, told from its first bytes: for messages about a file given in the wrong place (a web page saved
under an audio name, a PNG passed where a CSV is expected) that say what it is instead of what failed."""
from __future__ import annotations

import os

# Kinds of text files (a CSV reader decodes them; they are the wrong file, not the wrong encoding, too).
TEXT_SIGNATURES = (
    ((b"<!doctype html", b"<html", b"<head", b"<body"), "a web page (HTML)"),
    ((b"<?xml",), "an XML document"),
    ((b"{", b"["), "JSON text"),
)
# Kinds of files that are not text: a CSV reader that meets one was given the wrong file, not a wrong encoding.
BINARY_SIGNATURES = (
    ((b"PK\x03\x04",), "a ZIP archive (or a document that is one: .xlsx, .ods, .docx)"),
    ((b"\x1f\x8b",), "a gzip archive"),
    ((b"%PDF",), "a PDF document"),
    ((b"\x89PNG",), "a PNG image"),
    ((b"\xff\xd8\xff",), "a JPEG image"),
    ((b"GIF8",), "a GIF image"),
    ((b"\xd0\xcf\x11\xe0",), "an old Microsoft Office document (.xls, .doc)"),
    ((b"RIFF",), "a RIFF file (WAV audio)"),
    ((b"fLaC",), "a FLAC audio file"),
    ((b"OggS",), "an Ogg file (Vorbis or Opus audio)"),
    ((b"FORM",), "an AIFF audio file"),
    ((b"ID3",), "an MP3 audio file (ID3 tag)"),
)
BINARY_KINDS = frozenset(what for _, what in BINARY_SIGNATURES)


def what_it_is(head: bytes) -> str | None:
    """What a file whose first bytes are ``head`` is ("a PNG image"), when they are a known signature; else None."""
    start = head.lstrip(b"\xef\xbb\xbf \t\r\n")[:16].lower()  # signatures match after blanks and a byte order mark
    for prefixes, what in TEXT_SIGNATURES + BINARY_SIGNATURES:
        if start.startswith(tuple(p.lower() for p in prefixes)):
            return what
    return None


def binary_kind(path: str | os.PathLike) -> str | None:
    """What a file is when it is a known kind of file that is not text (an image, an archive, audio); else None
    (text, or bytes of no known kind)."""
    with open(path, "rb") as f:
        what = what_it_is(f.read(64))
    return what if what in BINARY_KINDS else None
