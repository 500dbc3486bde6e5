"""MPEG audio frame headers, walked without decoding: where the audio starts after an ID3v2 tag, whether the
first frame is a Xing/Info tag with a frame count, and how many samples the Layer III frames hold. libsndfile
only estimates an MP3's length without that tag; curation.audio checks its decoded length against these."""
from __future__ import annotations

import os
from pathlib import Path

# Where a Xing/Info tag sits after the 4-byte MPEG frame header: after the side information, whose size depends
# on the MPEG version and on mono or not.
_XING_OFFSETS = (13, 21, 36)
MP3_FRAME = 1152  # samples per MPEG-1 Layer III frame (MPEG-2 and 2.5: 576)
# Layer III tables, by the header's version bits (3: MPEG-1, 2: MPEG-2, 0: MPEG-2.5).
_MP3_KBPS = {3: (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
             2: (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160)}
_MP3_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def mp3_audio_start(head: bytes) -> int:
    """Offset of the first byte after an ID3v2 tag, from the file's first 10 bytes (0 when there is none)."""
    if len(head) >= 10 and head[:3] == b"ID3":  # syncsafe size, optional footer
        size = (head[6] & 0x7F) << 21 | (head[7] & 0x7F) << 14 | (head[8] & 0x7F) << 7 | (head[9] & 0x7F)
        return 10 + size + (10 if head[5] & 0x10 else 0)
    return 0


def mp3_sync(data: bytes, pos: int = 0) -> int:
    """Offset of the first MPEG frame sync (11 set bits) at or after ``pos``, -1 when there is none: decoders
    skip junk before the first frame, and so does this."""
    for i in range(pos, len(data) - 1):
        if data[i] == 0xFF and data[i + 1] & 0xE0 == 0xE0:
            return i
    return -1


def mp3_declares_length(path: str | os.PathLike) -> bool:
    """Whether an MP3's first frame is a Xing/Info tag with a frame count (as LAME and libsndfile write it).
    libsndfile then reports that exact count, so the file can be held to it; without one, the count is an
    estimate from the file's size and first frame."""
    with open(path, "rb") as fh:
        fh.seek(mp3_audio_start(fh.read(10)))
        window = fh.read(4096)
    i = mp3_sync(window)
    if i < 0:
        return False
    frame = window[i:i + 48]
    for off in _XING_OFFSETS:
        if frame[off:off + 4] in (b"Xing", b"Info") and len(frame) >= off + 8:
            return bool(frame[off + 7] & 0x01)  # flags, big-endian: bit 0 = frame count present
    return False


def mp3_samples(path: str | os.PathLike) -> int:
    """Samples per channel in an MP3's Layer III frames, counted by walking their headers (no decoding); the
    walk stops at the first byte that is not a frame header (an ID3v1 or APE tag at the end)."""
    data = Path(path).read_bytes()  # MP3s are small: about 1 MB a minute
    pos = mp3_sync(data, mp3_audio_start(data[:10]))
    samples = 0
    while 0 <= pos and pos + 4 <= len(data):
        b1, b2 = data[pos + 1], data[pos + 2]
        version, layer, kbps_i, rate_i = (b1 >> 3) & 3, (b1 >> 1) & 3, b2 >> 4, (b2 >> 2) & 3
        if data[pos] != 0xFF or b1 & 0xE0 != 0xE0 or version == 1 or layer != 1 or kbps_i in (0, 15) or rate_i == 3:
            break
        kbps = _MP3_KBPS[3 if version == 3 else 2][kbps_i]
        rate = _MP3_RATES[version][rate_i]
        per_frame = MP3_FRAME if version == 3 else MP3_FRAME // 2
        pos += per_frame // 8 * kbps * 1000 // rate + ((b2 >> 1) & 1)
        samples += per_frame
    return samples
