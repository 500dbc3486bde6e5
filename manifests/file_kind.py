"""What a file is, told from its first bytes: for messages about a file given in the wrong place (a web page saved
under an audio name, a PNG passed where a CSV or a checkpoint is expected) that say what it is instead of what
failed. Only the name of the kind is reported, never the file's bytes beyond a short start of plain text."""
from __future__ import annotations

import os
import re

# (prefixes of the first bytes, what to call such a file, whether it is text); compared case-insensitively after
# a byte order mark and blanks. A text kind is the wrong file for a CSV reader, not the wrong encoding, too.
SIGNATURES = (
    ((b"<!doctype html", b"<html", b"<head", b"<body", b"<!--"), "a web page (HTML)", True),
    ((b"<?xml", b"<urlset", b"<rss", b"<feed"), "an XML document", True),
    ((b"PK\x03\x04", b"PK\x05\x06"), "a ZIP archive (or a document that is one: .xlsx, .ods, .docx)", False),
    ((b"\x1f\x8b",), "a gzip archive", False),
    ((b"7z\xbc\xaf\x27\x1c",), "a 7z archive", False),
    ((b"%PDF",), "a PDF document", False),
    ((b"\x89PNG",), "a PNG image", False),
    ((b"\xff\xd8\xff",), "a JPEG image", False),
    ((b"GIF8",), "a GIF image", False),
    ((b"\xd0\xcf\x11\xe0",), "an old Microsoft Office document (.xls, .doc)", False),
    ((b"RIFF",), "a RIFF file (WAV audio, AVI video or WebP image)", False),
    ((b"fLaC",), "a FLAC audio file", False),
    ((b"OggS",), "an Ogg file (Vorbis or Opus audio)", False),
    ((b"FORM",), "an AIFF audio file", False),
    ((b"ID3",), "an MP3 audio file (ID3 tag)", False),
    ((b"\x93NUMPY",), "a NumPy array (.npy)", False),
    ((b"\x7fELF",), "a program (ELF executable)", False),
)
BINARY_KINDS = frozenset(what for _, what, text in SIGNATURES if not text)
JSON_TEXT = "JSON text"
HEAD_BYTES = 4096
_JSON_START = re.compile(rb'[{\[]\s*(?:["{\[\]}\-0-9]|true|false|null|$)')  # not "[PAD]" (a vocab.txt)


def what_it_is(head: bytes) -> str | None:
    """What a file whose first bytes are ``head`` is ("a PNG image"), when they are a known signature or JSON;
    else None."""
    start = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    for prefixes, what, _ in SIGNATURES:
        if start[:16].lower().startswith(tuple(p.lower() for p in prefixes)):
            return what
    if _JSON_START.match(start):
        return JSON_TEXT
    return None


def binary_kind(path: str | os.PathLike) -> str | None:
    """What a file is when it is a known kind of file that is not text (an image, an archive, audio); else None
    (text, or bytes of no known kind)."""
    with open(path, "rb") as f:
        what = what_it_is(f.read(64))
    return what if what in BINARY_KINDS else None


def looks_like(head: bytes) -> str | None:
    """The kind a file starting with ``head`` is (a signature, safetensors, zero bytes, text), or None."""
    if not head.strip(b"\x00"):
        return "only zero bytes" if head else None
    if len(head) > 10 and head[8:10] == b'{"' and int.from_bytes(head[:8], "little") < 1 << 30:
        return "safetensors weights"
    what = what_it_is(head)
    if what:
        return what
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as e:  # a multi-byte character cut by the end of the head is still text
        text = head[:e.start].decode("utf-8") if e.start >= len(head) - 3 else None
    if text is not None and all(c.isprintable() or c in "\t\r\n" for c in text[:512]):
        first = text.strip().splitlines()[0][:40] if text.strip() else ""
        return f"text (starts {first!r})"
    if all(b >= 32 or b in (9, 10, 13) for b in head[:512]):  # Latin-1 and other 8-bit text
        return "text (not UTF-8)"
    return None


def describe_file(path: str | os.PathLike) -> str:
    """'empty', 'a web page (HTML)', 'text (starts ...)', ... or 'bytes 80 04 95 ...' when the kind is unknown."""
    with open(path, "rb") as f:
        head = f.read(HEAD_BYTES)
    if not head:
        return "empty (0 bytes)"
    return looks_like(head) or f"unknown bytes {head[:8].hex(' ')}"
