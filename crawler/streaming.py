"""A Scrapy HTTP/1.1 download handler that writes audio bodies to disk as they arrive.

Scrapy has no public API for streaming a response body (scrapy/scrapy#3880, #4620): its HTTP/1.1 handler
gathers every body in a BytesIO, so a 45-minute WAV would sit in memory until the pipeline saw it. For a
request whose meta holds STREAM_TO (a folder), this handler gives Scrapy's own `_ResponseReader` a file
instead of its BytesIO: each chunk goes to a temporary file in that folder (named like manifests.atomic's,
so a crawl that resumes removes leftovers) while size and sha256 are updated. Everything else stays
Scrapy's: size caps, warnings, dataloss, timeouts and cancellation, which here also delete the file. The
Response then has an empty body, and `response.meta[STREAMED]` a StreamedBody (path, size, sha256, head).

Only a 200 answer is streamed: redirects and errors keep their small bodies in memory as before, so their
responses leave no file behind. Requests without STREAM_TO (pages) are downloaded as Scrapy does.

This relies on private parts of scrapy.core.downloader.handlers.http11 (pinned in pyproject.toml);
check_private_api() fails at startup with a clear message if they change.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scrapy import Request
from scrapy.core.downloader.handlers import http11
from scrapy.exceptions import DownloadCancelledError, ResponseDataLossError
from scrapy.http import Response
from scrapy.utils._download_handlers import get_dataloss_msg, get_maxsize_msg, wrap_twisted_exceptions
from scrapy.utils.defer import maybe_deferred_to_future
from twisted.internet.defer import CancelledError
from twisted.python.failure import Failure

from manifests.atomic import make_temp

from .state import PART_SUFFIX
from .statuses import DownloadFailed
from .stopping import STOP_DEADLINE, not_sent, request_stop, stop_requested

STREAM_TO = "wt5k_stream_to"   # request meta: the folder a 200 body is written to
STREAMED = "wt5k_streamed"     # request/response meta after the download: a StreamedBody
HEAD_SIZE = 64                 # bytes kept in memory to sniff the format


@dataclass(frozen=True)
class StreamedBody:
    """A response body already on disk: a temporary file that its consumer renames or deletes."""
    path: Path
    size: int
    sha256: str
    head: bytes


class _BodyFile:
    """Stands in for _ResponseReader's BytesIO (write / truncate / getvalue): each chunk goes to a
    temporary file, hashed on the way; getvalue() gives an empty body, the data is in the file."""

    def __init__(self, folder: str | os.PathLike, on_error=None):
        Path(folder).mkdir(parents=True, exist_ok=True)
        fd, name = make_temp(folder, ".download.", PART_SUFFIX)  # renamed into files/: normal permissions
        self.path = Path(name)
        self._file = os.fdopen(fd, "wb")
        self._sha256 = hashlib.sha256()
        self.size = 0
        self.head = b""
        self.error: OSError | None = None   # a write that failed (a full disk): the download is aborted
        self._on_error = on_error

    def write(self, data: bytes) -> None:
        if self.error is not None:
            return
        try:
            self._file.write(data)
        except OSError as e:
            self.error = e
            if self._on_error is not None:
                self._on_error()
            return
        self._sha256.update(data)
        self.size += len(data)
        if len(self.head) < HEAD_SIZE:
            self.head = (self.head + data)[:HEAD_SIZE]

    def truncate(self, size: int = 0) -> None:  # Scrapy empties its buffer when the size cap is passed
        self._file.truncate(size)

    def getvalue(self) -> bytes:
        return b""

    def finish(self) -> StreamedBody:
        self._file.close()
        return StreamedBody(self.path, self.size, self._sha256.hexdigest(), self.head)

    def discard(self) -> None:
        try:
            self._file.close()
        except OSError:  # its buffer could not be flushed (a full disk): the file goes anyway
            pass
        self.path.unlink(missing_ok=True)


class _StreamingAgent(http11._ScrapyAgent):
    def _cb_bodyready(self, txresponse, request: Request):
        request.meta.pop(STREAMED, None)  # copied from an earlier attempt by a retry or redirect
        folder = request.meta.get(STREAM_TO)
        if folder is not None and txresponse.code == 200:
            deliver = txresponse.deliverBody  # Scrapy hands its _ResponseReader to this

            def deliver_to_file(reader: http11._ResponseReader) -> None:
                body = reader._bodybuf = _BodyFile(folder, on_error=reader._finished.cancel)

                def settle(result: Any) -> Any:
                    if body.error is None and not isinstance(result, Failure) and not result.get("stop_download"):
                        try:
                            request.meta[STREAMED] = body.finish()
                            return result
                        except OSError as e:  # the last bytes could not be flushed
                            body.error = e
                    body.discard()  # size cap, timeout, dataloss, cancel: nothing stays on disk
                    if body.error is not None:  # a full disk fails every download: the crawl stops
                        request_stop(self._crawler, "write_error")
                        return Failure(DownloadFailed("cancelled", f"cannot write the download to {folder}: "
                                                                   f"{body.error.strerror or body.error}"))
                    if (isinstance(result, Failure) and result.check(CancelledError) and reader._maxsize
                            and reader._bytes_received > reader._maxsize):
                        # Scrapy cancels a body that outgrows the cap with a bare CancelledError (only its
                        # log says why); say it, so that the item is recorded as too_large.
                        return Failure(DownloadCancelledError(get_maxsize_msg(
                            reader._bytes_received, reader._maxsize, request, expected=False)))
                    return result

                reader._finished.addBoth(settle)
                deliver(reader)

            txresponse.deliverBody = deliver_to_file
        return super()._cb_bodyready(txresponse, request)


class StreamingDownloadHandler(http11.HTTP11DownloadHandler):
    """Scrapy's HTTP/1.1 handler; requests with meta[STREAM_TO] get their 200 body written to disk. Every
    download in flight is cancelled when a stopping crawl reaches its deadline (crawler.stopping)."""

    def __init__(self, crawler):
        check_private_api()
        super().__init__(crawler)
        self._in_flight: set = set()
        crawler.signals.connect(self.cancel_in_flight, signal=STOP_DEADLINE)

    def cancel_in_flight(self) -> None:
        if self._in_flight:
            http11.logger.info("cancelling %d downloads still in flight", len(self._in_flight))
        for d in list(self._in_flight):
            d.cancel()

    async def download_request(self, request: Request) -> Response:
        # As HTTP11DownloadHandler.download_request, with the streaming agent (which streams only requests
        # with STREAM_TO) and the download remembered while in flight. A request that waited in a download
        # slot (DOWNLOAD_DELAY) while the crawl was told to stop is not sent.
        if stop_requested(self._crawler):
            raise not_sent(request)
        agent = _StreamingAgent(
            contextFactory=self._contextFactory, bindAddress=self._bind_address, pool=self._pool,
            maxsize=self._default_maxsize, warnsize=self._default_warnsize,
            fail_on_dataloss=self._fail_on_dataloss, crawler=self._crawler,
            tls_verbose_logging=self._tls_verbose_logging)
        d = agent.download_request(request)
        self._in_flight.add(d)
        try:
            with wrap_twisted_exceptions():
                return await maybe_deferred_to_future(d)
        except ResponseDataLossError:
            if not self._fail_on_dataloss_warned:
                http11.logger.warning(get_dataloss_msg(request.url))
                self._fail_on_dataloss_warned = True
            raise
        finally:
            self._in_flight.discard(d)


def _uses(func: Any, name: str) -> bool:
    return name in getattr(getattr(func, "__code__", None), "co_names", ())


def check_private_api() -> None:
    """Fail clearly when the installed Scrapy lacks the private pieces this handler builds on."""
    import scrapy

    reader, agent = getattr(http11, "_ResponseReader", None), getattr(http11, "_ScrapyAgent", None)
    handler_init = (http11.HTTP11DownloadHandler.__init__, http11.BaseHttpDownloadHandler.__init__)
    needs = {
        "_ResponseReader.dataReceived writes to _bodybuf": _uses(getattr(reader, "dataReceived", None), "_bodybuf"),
        "_ResponseReader._finish_response reads _bodybuf": _uses(getattr(reader, "_finish_response", None),
                                                                "_bodybuf"),
        **{f"_ResponseReader has {name}": _uses(getattr(reader, "__init__", None), name)
           for name in ("_finished", "_maxsize", "_bytes_received")},
        "_ScrapyAgent._cb_bodyready calls deliverBody": _uses(getattr(agent, "_cb_bodyready", None), "deliverBody"),
        **{f"HTTP11DownloadHandler sets {name}": any(_uses(f, name) for f in handler_init)
           for name in ("_contextFactory", "_bind_address", "_pool", "_default_maxsize", "_default_warnsize",
                        "_fail_on_dataloss", "_tls_verbose_logging")},
    }
    if missing := [what for what, ok in needs.items() if not ok]:
        raise RuntimeError(f"crawler.streaming.StreamingDownloadHandler does not support Scrapy {scrapy.__version__} "
                           f"(tested with 2.19): no longer true: {'; '.join(missing)}. Install the Scrapy range "
                           f"pyproject.toml pins, or remove DOWNLOAD_HANDLERS from crawler/settings.py (audio is "
                           f"then held in memory until written).")
