"""Atomic file writes shared by every stage: write a temporary file beside the target, then rename it over
the target, so an interrupted run never leaves a half-written manifest, item log, audio file or checkpoint."""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

TMP_SUFFIX = ".part"


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = TMP_SUFFIX, fsync: bool = False) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success rename it to ``path``, on error remove it.
    With ``fsync`` the data reaches the disk before the rename (for logs a kill -9 must not tear)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        if fsync:
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
