"""How a failed request becomes an items.jsonl status (manifests.crawl_record.STATUSES) and message."""
from __future__ import annotations

from scrapy.exceptions import (CannotResolveHostError, DownloadCancelledError, DownloadConnectionRefusedError,
                               DownloadFailedError, DownloadTimeoutError, IgnoreRequest, ResponseDataLossError)
from scrapy.spidermiddlewares.httperror import HttpError
from twisted.internet import defer
from twisted.internet import error as twisted_error
from twisted.web._newclient import ResponseFailed, ResponseNeverReceived

from manifests.file_kind import what_it_is


class DownloadFailed(Exception):
    """A download that gave no audio; `status` is the items.jsonl status."""

    def __init__(self, status: str, message: str):
        super().__init__(message)
        self.status, self.message = status, message


class RequestRefused(IgnoreRequest):
    """A request the crawler does not send (refused_url, host_down, cancelled); `status` is its items.jsonl
    status. An IgnoreRequest, so Scrapy neither retries nor logs it as an error."""

    def __init__(self, status: str, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def describe_head(head: bytes) -> str:
    """What a body that is not audio looks like from its first bytes (manifests/file_kind.py), without quoting
    them: a site's bytes never go into items.jsonl or the log."""
    if not head.strip(b"\x00"):
        return "zero bytes"
    if what := what_it_is(head):
        return what
    if all(32 <= b < 127 or b in (9, 10, 13) for b in head):
        return "plain text"
    return "unrecognised binary data"


def classify_failure(exc: BaseException) -> tuple[str, str]:
    """(status, message) for an exception raised while fetching a page or a file."""
    msg = str(exc) or type(exc).__name__
    if isinstance(exc, (DownloadFailed, RequestRefused)):
        return exc.status, exc.message
    if isinstance(exc, HttpError):
        return "http_error", f"HTTP {exc.response.status} from {exc.response.url}"
    if isinstance(exc, IgnoreRequest):
        if "DOWNLOAD_MAXSIZE" in msg or "max size" in msg.lower():  # e.g. a page over the cap once decompressed
            return "too_large", msg
        return ("robots_forbidden" if "robots" in msg.lower() else "ignored"), msg
    if isinstance(exc, (DownloadTimeoutError, twisted_error.TimeoutError, twisted_error.TCPTimedOutError,
                        defer.TimeoutError)):
        return "timeout", msg
    if isinstance(exc, (DownloadCancelledError, defer.CancelledError)):
        if "max size" in msg.lower():
            return "too_large", msg
        return "cancelled", (msg if str(exc) else "download cancelled while in flight (the crawl was stopping)")
    if isinstance(exc, ResponseDataLossError):
        return "truncated", msg
    if isinstance(exc, ResponseFailed):
        if "DataLoss" in repr(exc.reasons):
            return "truncated", f"connection closed before the body was complete: {exc.reasons}"
        return "connection_error", repr(exc.reasons)
    if isinstance(exc, (DownloadConnectionRefusedError, CannotResolveHostError, DownloadFailedError,
                        ResponseNeverReceived, twisted_error.ConnectError, twisted_error.ConnectionLost,
                        twisted_error.DNSLookupError, ConnectionError)):
        return "connection_error", msg
    return "error", f"{type(exc).__name__}: {msg}"
