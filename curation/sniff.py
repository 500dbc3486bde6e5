"""What an audio input that does not decode looks like, for its reject's detail: a web page saved under an audio
name, only zero bytes, an ID3 tag with nothing after it, text, ..."""
from __future__ import annotations

import os

from manifests.file_kind import what_it_is

from .mp3_frames import mp3_audio_start, mp3_sync

# Audio containers whose start is there but which libsndfile could not open.
_DAMAGED_AUDIO = {
    b"RIFF": "the start of a RIFF (WAV) file, damaged or of an unsupported kind",
    b"fLaC": "the start of a FLAC file, damaged",
    b"OggS": "the start of an Ogg file, damaged or of an unsupported codec",
    b"FORM": "the start of an AIFF file, damaged",
}


# WAV format tags of codecs met inside real WAV files that libsndfile does not decode (lmms ships Ogg Vorbis
# in WAV under .ogg names); named so that a reject says "this codec", not only "damaged".
_WAV_CODECS = {0x674F: "Ogg Vorbis", 0x6750: "Ogg Vorbis", 0x6751: "Ogg Vorbis", 0x6771: "Ogg Vorbis",
               0x0055: "MPEG Layer 3", 0x0050: "MPEG", 0x0161: "Windows Media Audio", 0x0162: "Windows Media Audio",
               0x00FF: "AAC", 0x1610: "AAC", 0x2000: "AC-3"}


def _wav_codec(start: bytes) -> str:
    """``; its fmt chunk names format 0x674F (Ogg Vorbis)`` for a RIFF/WAVE whose first chunk is fmt."""
    if start[8:16] != b"WAVEfmt " or len(start) < 22:
        return ""
    tag = int.from_bytes(start[20:22], "little")
    name = _WAV_CODECS.get(tag)
    return f"; its fmt chunk names audio format 0x{tag:04X}" + (f" ({name})" if name else "")


def describe_bytes(path: str | os.PathLike) -> str:
    """What a file's bytes look like, for messages about files that do not decode."""
    with open(path, "rb") as f:
        head = f.read(1 << 16)
        size = os.fstat(f.fileno()).st_size
    if not head:
        return "the file is empty"
    if not head.strip(b"\x00"):
        return f"only zero bytes ({size})" if size <= len(head) else f"starts with {len(head)} zero bytes"
    start = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if start[:4] in _DAMAGED_AUDIO:
        return f"starts with {start[:16]!r}: {_DAMAGED_AUDIO[start[:4]]}{_wav_codec(start)}"
    if head[:3] == b"ID3":
        end = mp3_audio_start(head)
        if end >= size:
            return f"an ID3 tag ({size} bytes) and no audio after it"
        return "an ID3 tag followed by bytes that are not MPEG audio frames"
    what = what_it_is(head)
    if what:
        return f"starts with {start[:16]!r}: {what}, not audio"
    if mp3_sync(head[:64]) == 0:
        return "starts like an MPEG audio frame, but does not decode"
    if all(32 <= b < 127 or b in (9, 10, 13) for b in head[:64]):
        return f"text, not audio: starts with {head[:40].decode('ascii')!r}"
    return f"starts with bytes {head[:8].hex(' ')} (no known audio format)"
