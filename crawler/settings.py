"""Scrapy settings of the WavText5K crawler: polite by default.

`wt5k-crawl --no-polite` (or `-s WT5K_POLITE=False`) makes the spiders apply NO_POLITE_OVERRIDES: for the
local mirror, tests and benchmarks only, never for the real sites.
"""
BOT_NAME = "wavtext5k"
SPIDER_MODULES = ["crawler.spiders"]
NEWSPIDER_MODULE = "crawler.spiders"

# An honest User-Agent naming the project and where to read about it (override with --user-agent).
USER_AGENT = "WavText5K-toolkit-crawler/0.1 (+https://github.com/microsoft/WavText5K; research dataset reproduction)"

# Politeness: robots.txt, one request at a time per site, a delay, AutoThrottle on top.
ROBOTSTXT_OBEY = True
CONCURRENT_REQUESTS = 8
CONCURRENT_REQUESTS_PER_DOMAIN = 1
DOWNLOAD_DELAY = 2.0
AUTOTHROTTLE_ENABLED = True
AUTOTHROTTLE_START_DELAY = 2.0
AUTOTHROTTLE_MAX_DELAY = 60.0
AUTOTHROTTLE_TARGET_CONCURRENCY = 1.0

# Retries with back-off on 429/5xx, honouring Retry-After (crawler.middlewares.PoliteRetryMiddleware).
RETRY_ENABLED = True
RETRY_TIMES = 3
RETRY_HTTP_CODES = [429, 500, 502, 503, 504, 522, 524, 408]
RETRY_BACKOFF_BASE = 5.0      # seconds; attempt n waits base * 2**(n-1) when no Retry-After is given
RETRY_BACKOFF_MAX = 300.0     # longest back-off / Retry-After we wait; longer Retry-After gives up
DOWNLOADER_MIDDLEWARES = {
    "crawler.guard.RequestGuardMiddleware": 50,          # first: schemes, hosts, internal addresses, stopping
    "scrapy.downloadermiddlewares.retry.RetryMiddleware": None,
    "crawler.middlewares.PoliteRetryMiddleware": 550,
    "crawler.middlewares.HostHealthMiddleware": 560,     # sees failures before the retry middleware
}
EXTENSIONS = {"crawler.stopping.StopControl": 0}
WT5K_STOP_GRACE = 5.0         # seconds downloads in flight get after SIGTERM/Ctrl-C before they are cancelled
WT5K_HOST_DOWN_AFTER = 3      # failed DNS look-ups / refused connections in a row that mark a host down

DOWNLOAD_TIMEOUT = 180
# Audio bodies stream to a temporary file (crawler.streaming) instead of sitting in memory; pages are held in
# memory as Scrapy does. Scrapy's 'h2' handler is not used: the sites speak HTTP/1.1. Every other scheme's
# handler is off: a link in a page or a CSV must not read local files (file://) or reach other services.
DOWNLOAD_HANDLERS = {
    "http": "crawler.streaming.StreamingDownloadHandler",
    "https": "crawler.streaming.StreamingDownloadHandler",
    "file": None, "data": None, "ftp": None, "s3": None,
}
# Pages (HTML, XML) are held in memory and decompressed by Scrapy: a few MiB each, checked while they arrive
# and while they are decompressed (a gzip bomb page stops at the cap). Audio alone, streamed to disk, gets
# the large cap: a 45-minute 48 kHz 24-bit stereo WAV is about 780 MB; the largest known file (a 45-min
# rainstorm) about 460 MB.
DOWNLOAD_MAXSIZE = 8 * 1024 * 1024
DOWNLOAD_WARNSIZE = 2 * 1024 * 1024
WT5K_AUDIO_MAXSIZE = 1024 * 1024 * 1024
WT5K_AUDIO_WARNSIZE = 256 * 1024 * 1024
WT5K_MAX_BYTES = 0            # total bytes of audio one wt5k-crawl run may write (0: no budget); --max-bytes

ITEM_PIPELINES = {
    "crawler.pipelines.AudioDownloadPipeline": 300,
    "crawler.pipelines.JsonlStorePipeline": 800,
}
# FILES_STORE is set per spider to <WT5K_OUT>/<spider> (crawler.spiders.base.SoundSpider.update_settings).
MEDIA_ALLOW_REDIRECTS = True   # grab.php answers 302 to the static file
FILES_EXPIRES = 0

# Where the crawl writes (<WT5K_OUT>/<spider>/items.jsonl and files/) and what a re-run fetches again.
WT5K_OUT = "data/raw"
WT5K_RETRY_FAILED = False
WT5K_POLITE = True

LOG_LEVEL = "INFO"
TELNETCONSOLE_ENABLED = False
REQUEST_FINGERPRINTER_IMPLEMENTATION = "2.7"
FEED_EXPORT_ENCODING = "utf-8"

# For the offline mirror, tests and benchmarks: no delay, many connections, no back-off.
NO_POLITE_OVERRIDES = {
    "WT5K_POLITE": False,
    "CONCURRENT_REQUESTS": 32,
    "CONCURRENT_REQUESTS_PER_DOMAIN": 16,
    "DOWNLOAD_DELAY": 0,
    "AUTOTHROTTLE_ENABLED": False,
    "RETRY_BACKOFF_BASE": 0.0,
}
