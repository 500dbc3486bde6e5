"""Offline mirror of SoundBible and BigSoundBank for tests, benchmarks and the demo (see README.md)."""
from .faults import Faults

__all__ = ["Faults", "Mirror", "start_mirror"]


def __getattr__(name: str):
    # server is imported on first use, so that `python -m crawler.mirror.server` does not import it twice
    # (runpy's "found in sys.modules" warning)
    if name in ("Mirror", "start_mirror"):
        from . import server
        return getattr(server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
