"""A crawl that stops when told.

Scrapy's first SIGTERM/SIGINT stops the engine (no queued request is sent any more) and waits for what is in
flight: here that could be minutes, as the download pipeline tries each sound's fallback URLs with retries
and back-off, and a large file may take long. So, once the engine stops:
- `stop_requested(crawler)` is true: the request guard (crawler.guard) refuses every new request, fallbacks
  included, as `cancelled`; the retry middleware neither retries nor keeps waiting;
- after WT5K_STOP_GRACE seconds, STOP_DEADLINE is sent and the download handler cancels what is still
  downloading (its temporary file deleted), so the crawl ends within about that time.
Sounds left unfinished are recorded as `cancelled`, which a resumed crawl fetches again. A second signal is
Scrapy's: it stops the reactor at once (items.jsonl is flushed per record, so it stays consistent).
"""
from __future__ import annotations

import logging

from scrapy import signals
from twisted.internet import task
from twisted.python.failure import Failure

from .statuses import RequestRefused

logger = logging.getLogger(__name__)

STOP_DEADLINE = object()  # a Scrapy signal: cancel every download still in flight


def stop_requested(crawler) -> bool:
    """True once the crawl is stopping (a signal, or the engine closing for another reason)."""
    engine = getattr(crawler, "engine", None)
    return engine is not None and (not engine.running or bool(getattr(crawler, "wt5k_stopping", "")))


def not_sent(request) -> RequestRefused:
    """The failure of a request that is not sent because the crawl is stopping (status cancelled)."""
    return RequestRefused("cancelled", f"the crawl stopped before {request.url} was requested")


def request_stop(crawler, reason: str) -> None:
    """Stop the crawl from inside (e.g. --max-bytes reached): as a signal would, with `reason` as the
    spider's finish reason."""
    if getattr(crawler, "wt5k_stopping", ""):
        return
    crawler.wt5k_stopping = reason
    from scrapy.utils.defer import deferred_from_coro

    deferred_from_coro(crawler.engine.close_spider_async(reason=reason))


class StopControl:
    """Watches for the stop and enforces its deadline (an extension)."""

    def __init__(self, crawler, grace: float):
        self.crawler, self.grace = crawler, grace
        self.watch = task.LoopingCall(self._check)
        self.deadline = None
        crawler.signals.connect(self._start, signal=signals.engine_started)
        crawler.signals.connect(self._end, signal=signals.engine_stopped)

    @classmethod
    def from_crawler(cls, crawler) -> "StopControl":
        return cls(crawler, crawler.settings.getfloat("WT5K_STOP_GRACE", 5.0))

    def _start(self) -> None:
        self.watch.start(0.2, now=False)

    def _check(self) -> None:
        if self.deadline is None and stop_requested(self.crawler):
            from twisted.internet import reactor

            logger.info("stopping: no new request is sent; downloads in flight get %.0f s", self.grace)
            self.deadline = reactor.callLater(self.grace, self._cancel_in_flight)
            self.watch.stop()
            self._drop_queued()

    def _drop_queued(self) -> None:
        """Fail the requests waiting in the downloader's per-site queues (each would first wait its
        DOWNLOAD_DELAY): Scrapy keeps them there after a stop. Its queues are private (Scrapy is pinned)."""
        slots = getattr(getattr(self.crawler.engine, "downloader", None), "slots", None) or {}
        dropped = 0
        for slot in list(slots.values()):
            queue = getattr(slot, "queue", None)
            while queue:
                request, d = queue.popleft()
                d.errback(Failure(not_sent(request)))
                dropped += 1
        if dropped:
            logger.info("stopping: %d queued requests dropped", dropped)

    def _cancel_in_flight(self) -> None:
        self.crawler.signals.send_catch_log(signal=STOP_DEADLINE)

    def _end(self) -> None:
        if self.watch.running:
            self.watch.stop()
        if self.deadline is not None and self.deadline.active():
            self.deadline.cancel()
