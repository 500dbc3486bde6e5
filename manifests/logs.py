"""What a command's log shows on the console: the toolkit's INFO messages (a checkpoint's load report, for one)
on stderr in a plain format, warnings and errors only with ``--quiet``; other libraries' warnings and errors."""
from __future__ import annotations

import logging
import sys

PROJECT_LOGGERS = ("manifests", "crawler", "curation", "training", "search", "demo")
HANDLER_NAME = "wt5k-console"
FORMAT = "%(levelname)s %(name)s: %(message)s"


class _StderrHandler(logging.StreamHandler):
    """Writes to sys.stderr as it is when a record comes (a test's capture or a tool may replace it)."""

    def __init__(self) -> None:
        super().__init__()
        self.set_name(HANDLER_NAME)
        self.setFormatter(logging.Formatter(FORMAT))

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ sets it; the property always answers sys.stderr
        pass


def show_logs(quiet: bool = False) -> None:
    """Log the toolkit's INFO and above (WARNING and above when ``quiet``) to stderr, once per process
    however often a command's main() runs (tests call them many times)."""
    root = logging.getLogger()
    if not any(h.get_name() == HANDLER_NAME for h in root.handlers):
        root.addHandler(_StderrHandler())  # on the root: other libraries' warnings get the same format
    level = logging.WARNING if quiet else logging.INFO
    for name in PROJECT_LOGGERS:  # the root keeps WARNING: other libraries' INFO stays out
        logging.getLogger(name).setLevel(level)
