"""Fixtures shared by the test modules. Plain helper functions live beside them (tests/crawler_helpers.py,
tests/training_fixtures.py, tests/model_helpers.py, tests/synth.py); tests/ is a package so that the benchmarks
can import the same fixture generators (``tests.synth``) without touching sys.path."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.crawler_helpers import write_edge_case_csv


@pytest.fixture(scope="session")
def edge_csv(tmp_path_factory) -> Path:
    """The 29 real edge-case records of both sites as a published-format CSV (what the mirror is built from).
    Shared by the whole session: tests read it, none writes it."""
    return write_edge_case_csv(tmp_path_factory.mktemp("edge") / "edge.csv")


@pytest.fixture(autouse=True)
def restore_logging():
    """Undo a command's show_logs (manifests/logs.py) after each test: its stderr handler and the toolkit's
    log levels would otherwise outlive the test that ran the command."""
    import logging

    from manifests.logs import HANDLER_NAME, PROJECT_LOGGERS

    yield
    root = logging.getLogger()
    for handler in [h for h in root.handlers if h.get_name() == HANDLER_NAME]:
        root.removeHandler(handler)
    for name in PROJECT_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET)


@pytest.fixture
def restore_progress_bars(monkeypatch):
    """For tests of --quiet (manifests/progress.py): bars on at the start, and on again afterwards, with the
    environment variables the switch sets put back by monkeypatch."""
    from huggingface_hub.utils import enable_progress_bars
    from transformers.utils import logging

    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    monkeypatch.delenv("HF_HUB_DISABLE_PROGRESS_BARS", raising=False)
    enable_progress_bars()
    logging.enable_progress_bar()
    yield
    enable_progress_bars()
    logging.enable_progress_bar()
