"""What the toolkit reads as audio: one list of file extensions for search, the converters and curation."""
from __future__ import annotations

import os

# Extensions of the containers libsndfile decodes (Ogg Vorbis/Opus also as .oga/.opus, as desktop sound themes
# ship them); a folder's other files are counted and reported, not read.
AUDIO_EXTENSIONS = (".wav", ".wave", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".aiff", ".aif", ".aifc", ".au",
                    ".snd", ".caf", ".w64", ".rf64")


def is_audio_name(name: str) -> bool:
    """Whether a file name has one of the audio extensions (case-insensitive)."""
    return os.path.splitext(name)[1].lower() in AUDIO_EXTENSIONS

# The sample rates the toolkit reads and writes: telephone-band 4 kHz to the 768 kHz of studio converters. A
# header that declares a rate outside is damaged or hostile: a 444-byte WAV declaring 1 Hz would otherwise
# become 200 s of audio at 44.1 kHz (44,100 times its frames).
MIN_SAMPLE_RATE = 4_000
MAX_SAMPLE_RATE = 768_000


def sample_rate_problem(rate: int) -> str:
    """Why a declared sample rate is refused ("" when it is in the range)."""
    if MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        return ""
    return f"{rate:,} Hz is outside the {MIN_SAMPLE_RATE:,}-{MAX_SAMPLE_RATE:,} Hz this toolkit reads"
