"""Retries that wait (Retry-After on 429/503, exponential back-off on other 5xx) unless the crawl is stopping;
hosts that keep failing to resolve or to accept connections are marked down."""
from __future__ import annotations

import email.utils
import logging
import time

from scrapy import Request
from scrapy.downloadermiddlewares.retry import RetryMiddleware
from scrapy.http import Response
from scrapy.utils.defer import maybe_deferred_to_future
from scrapy.utils.httpobj import urlparse_cached
from scrapy.utils.response import response_status_message
from scrapy.exceptions import CannotResolveHostError, DownloadConnectionRefusedError
from twisted.internet import error as twisted_error
from twisted.internet import task

from .statuses import RequestRefused
from .stopping import stop_requested

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

    def process_exception(self, request: Request, exception: Exception, spider=None):
        if stop_requested(self.crawler):
            return None
        return super().process_exception(request, exception)

    async def process_response(self, request: Request, response: Response) -> Request | Response:
        if request.meta.get("dont_retry", False) or response.status not in self.retry_http_codes:
            return response
        if stop_requested(self.crawler):
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

            end = time.monotonic() + wait
            while (left := end - time.monotonic()) > 0:  # in steps, to notice a stop
                if stop_requested(self.crawler):
                    return response
                await maybe_deferred_to_future(task.deferLater(reactor, min(left, 0.25), lambda: None))
        return self._retry(request, response_status_message(response.status)) or response


CONNECT_FAILURES = (CannotResolveHostError, DownloadConnectionRefusedError, twisted_error.DNSLookupError,
                    twisted_error.ConnectionRefusedError)


class HostHealthMiddleware:
    """Marks a host (host:port) down after WT5K_HOST_DOWN_AFTER failures in a row to resolve its name or to
    connect (retries count: a dead host is given up after one sound's retries); any answer from it resets the
    count. Requests to a host that is down are refused at once as `host_down`, naming the host and its error,
    instead of each sound trying every URL with retries."""

    def __init__(self, crawler, after: int):
        self.crawler, self.after = crawler, after
        self.failures: dict[str, int] = {}
        self.down: dict[str, str] = {}  # host -> the error that put it down

    @classmethod
    def from_crawler(cls, crawler) -> "HostHealthMiddleware":
        return cls(crawler, crawler.settings.getint("WT5K_HOST_DOWN_AFTER", 3))

    @staticmethod
    def host(request: Request) -> str:
        return urlparse_cached(request).netloc.lower()

    def process_request(self, request: Request):
        if (error := self.down.get(host := self.host(request))) is not None:
            raise RequestRefused("host_down", f"host {host} is down ({self.after} failed connections in a row, "
                                              f"last: {error}): {request.url} not requested")
        return None

    def process_response(self, request: Request, response: Response):
        self.failures.pop(self.host(request), None)
        return response

    def process_exception(self, request: Request, exception: Exception):
        if not isinstance(exception, CONNECT_FAILURES) or self.after <= 0:
            return None
        host = self.host(request)
        self.failures[host] = n = self.failures.get(host, 0) + 1
        if n >= self.after and host not in self.down:
            self.down[host] = f"{type(exception).__name__}: {exception}"
            self.crawler.stats.inc_value("wt5k/hosts_down")
            logger.error("host %s marked down after %d failed connections in a row (%s): its remaining "
                         "requests are recorded as host_down", host, n, self.down[host])
        return None
