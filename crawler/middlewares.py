"""Retries that wait: honour Retry-After on 429/503, back off exponentially on other 5xx."""
from __future__ import annotations

import email.utils
import logging
import time

from scrapy import Request
from scrapy.downloadermiddlewares.retry import RetryMiddleware
from scrapy.http import Response
from scrapy.utils.defer import maybe_deferred_to_future
from scrapy.utils.response import response_status_message
from twisted.internet import task

logger = logging.getLogger(__name__)


def retry_after_seconds(value: str | bytes | None, now: float | None = None) -> float | None:
    """Seconds asked for by a Retry-After header (delta-seconds or an HTTP date); None if absent/invalid."""
    if not value:
        return None
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    text = text.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


class PoliteRetryMiddleware(RetryMiddleware):
    """Scrapy's RetryMiddleware, but each retry of an HTTP error waits first: Retry-After when the server
    sends one (capped by RETRY_BACKOFF_MAX: a longer demand gives up and keeps the error response), else
    RETRY_BACKOFF_BASE * 2**(attempt-1). Exceptions (timeouts, resets) are retried as Scrapy does."""

    def __init__(self, settings):
        super().__init__(settings)
        self.backoff_base = settings.getfloat("RETRY_BACKOFF_BASE", 5.0)
        self.backoff_max = settings.getfloat("RETRY_BACKOFF_MAX", 300.0)

    async def process_response(self, request: Request, response: Response) -> Request | Response:
        if request.meta.get("dont_retry", False) or response.status not in self.retry_http_codes:
            return response
        attempt = request.meta.get("retry_times", 0) + 1
        if attempt > request.meta.get("max_retry_times", self.max_retry_times):
            return self._retry(request, response_status_message(response.status)) or response
        wait = retry_after_seconds(response.headers.get("Retry-After"))
        if wait is None:
            wait = min(self.backoff_base * 2 ** (attempt - 1), self.backoff_max)
        elif wait > self.backoff_max:
            logger.warning("Giving up %s: Retry-After %.0f s exceeds RETRY_BACKOFF_MAX", request, wait)
            return response
        if wait > 0:
            logger.info("HTTP %s for %s: waiting %.1f s before retry %d", response.status, request, wait, attempt)
            from twisted.internet import reactor  # the running one (importing it early would install one)

            await maybe_deferred_to_future(task.deferLater(reactor, wait, lambda: None))
        return self._retry(request, response_status_message(response.status)) or response
