"""What a file's first bytes look like, in words, for messages about a file that is not what a command
expected (a web page saved as a checkpoint, an image given for a CSV, ...). Only the name of the kind is
reported, never the file's bytes beyond a short start of plain text."""
from __future__ import annotations

import os
import re

# (prefixes of the first bytes, what to call such a file); compared case-insensitively after a BOM/whitespace
KINDS = (
    ((b"<!doctype html", b"<html", b"<head", b"<body"), "a web page (HTML)"),
    ((b"<?xml",), "an XML document"),
    ((b"PK\x03\x04", b"PK\x05\x06"), "a ZIP archive"),
    ((b"\x1f\x8b",), "a gzip archive"),
    ((b"%PDF",), "a PDF document"),
    ((b"\x89PNG",), "an image (PNG)"),
    ((b"\xff\xd8\xff",), "an image (JPEG)"),
    ((b"GIF8",), "an image (GIF)"),
    ((b"RIFF",), "a RIFF file (WAV audio or similar)"),
    ((b"fLaC",), "FLAC audio"),
    ((b"OggS",), "Ogg audio"),
    ((b"ID3",), "MP3 audio (ID3 tag)"),
    ((b"\x93NUMPY",), "a NumPy array (.npy)"),
    ((b"\x7fELF",), "a program (ELF executable)"),
)
HEAD_BYTES = 4096
_JSON_START = re.compile(rb'[{\[]\s*(?:["{\[\]}\-0-9]|true|false|null|$)')  # not "[PAD]" (a vocab.txt)


def looks_like(head: bytes) -> str | None:
    """The kind a file starting with ``head`` is (see KINDS, plus text, safetensors and zero bytes), or None."""
    if not head.strip(b"\x00"):
        return "only zero bytes" if head else None
    start = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    for prefixes, what in KINDS:
        if start[:16].lower().startswith(tuple(p.lower() for p in prefixes)):
            return what
    if len(head) > 10 and head[8:10] == b'{"' and int.from_bytes(head[:8], "little") < 1 << 30:
        return "safetensors weights"
    if _JSON_START.match(start):
        return "JSON text"
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
