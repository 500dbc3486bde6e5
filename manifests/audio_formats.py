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
