"""What C decoders print while a file is decoded (libmpg123 writes its notes about damaged frames to file
descriptor 2, without the file's name): captured per file, so that every stage that decodes (curation's
conversion and overlap audit, training's and search's reader) can repeat them under the file's name."""
from __future__ import annotations

import os
import sys
import tempfile
import threading


class StderrCapture:
    """Collects what C libraries write to file descriptor 2 while converting one file. One temporary file per
    process, reused. File descriptors belong to the process: conversions run one at a time per process
    (curation's workers are processes); threads of one process take turns (a lock), since two overlapping
    redirections of fd 2 would restore it in the wrong order."""
    _file = None
    _lock = threading.RLock()

    def __enter__(self) -> "StderrCapture":
        self.lines: list[str] = []
        StderrCapture._lock.acquire()
        try:
            if StderrCapture._file is None:
                StderrCapture._file = tempfile.TemporaryFile()
            f = StderrCapture._file
            f.seek(0)
            f.truncate()
            sys.stderr.flush()
            self._saved = os.dup(2)
            os.dup2(f.fileno(), 2)
        except (OSError, ValueError, AttributeError):  # no fd 2 to redirect (e.g. an embedded interpreter)
            self._saved = None
        return self

    def __exit__(self, *exc) -> None:
        try:
            self._restore()
        finally:
            StderrCapture._lock.release()

    def _restore(self) -> None:
        if self._saved is None:
            return
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os.dup2(self._saved, 2)
        os.close(self._saved)
        f = StderrCapture._file
        f.seek(0)
        text = f.read(1 << 16).decode("utf-8", "replace")
        self.lines = [line.strip() for line in text.splitlines() if line.strip()]


def repeat_on_stderr(src: str | os.PathLike, lines: list[str], shown: int = 3) -> None:
    """Print the first ``shown`` captured decoder lines on stderr, each prefixed with the file's name."""
    if not lines:
        return
    text = "\n".join(f"{src}: {line}" for line in lines[:shown])
    if len(lines) > shown:
        text += f"\n{src}: ({len(lines) - shown} more decoder messages)"
    print(text, file=sys.stderr, flush=True)
