"""Offline mirror of SoundBible and BigSoundBank for tests, benchmarks and the demo (see README.md)."""
from .faults import Faults
from .server import Mirror, start_mirror

__all__ = ["Faults", "Mirror", "start_mirror"]
