"""What a request may reach: http/https only, the spider's own hosts, no internal address.

Pages of sites we do not control pick where the crawler goes (links, sitemap entries, JSON-LD, redirects), and
so does a replayed CSV. So every request, redirects included (RedirectMiddleware's new request passes here
again), is checked before it is sent:
- the scheme is http or https (the other download handlers are disabled in settings.py as well);
- the host is one of the spider's: its sources' hosts and audio hosts (manifests/sources.py) and the
  configured base URLs;
- a loopback, private, link-local or otherwise internal IP address (or "localhost") is reached only when a
  configured base URL is that very address and port (the offline mirror on 127.0.0.1); a host name is
  looked up once per crawl and refused when it resolves to such an address (a site's DNS pointing inside);
- nothing new is sent once the crawl is stopping (crawler.stopping), and nothing to a host marked down
  (crawler.middlewares.HostHealthMiddleware).
A refused request fails with RequestRefused, which the spider or the download pipeline records as a status.
"""
from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from scrapy.utils.defer import maybe_deferred_to_future

from .statuses import RequestRefused
from .stopping import not_sent, stop_requested

SCHEMES = ("http", "https")
DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of a URL, the scheme's default port when it names none. ValueError when it is no
    URL."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower().rstrip("."), parts.port or DEFAULT_PORTS.get(scheme, 80)


def internal_address(host: str) -> bool:
    """True for loopback, private, link-local, reserved, multicast or unspecified IP literals, and localhost."""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


def internal_resolution(host: str) -> str | None:
    """The first internal address a host name resolves to, or None (also when it does not resolve: the
    connection then fails on its own)."""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return None
    return next((addr for *_, (addr, *_) in infos if internal_address(addr)), None)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
        return True
    except ValueError:
        return False


@dataclass(frozen=True)
class Targets:
    """The hosts a spider may request: `hosts` on any port, `origins` (host, port) exactly (base URLs)."""
    hosts: frozenset[str]
    origins: frozenset[tuple[str, int]]

    @classmethod
    def of(cls, site_hosts: list[str], base_urls: list[str]) -> "Targets":
        hosts = set()
        for h in site_hosts:
            hosts |= {h.lower(), f"www.{h.lower()}"}
        origins = set()
        for url in base_urls:
            _, host, port = _origin(url)
            if host:
                origins.add((host, port))
        return cls(frozenset(hosts), frozenset(origins))

    def configured(self, url: str) -> bool:
        """True when the URL is on a configured base URL's host and port."""
        _, host, port = _origin(url)
        return (host, port) in self.origins

    def refusal(self, url: str) -> str | None:
        """Why the crawler does not request this URL, or None when it may."""
        try:
            scheme, host, port = _origin(url)
        except ValueError as e:
            return f"not a valid URL ({e})"
        if scheme not in SCHEMES:
            return f"scheme {scheme or 'none'!r} is not followed (http and https only)"
        if not host:
            return "no host"
        if (host, port) in self.origins:
            return None
        if internal_address(host):
            return f"internal address {host} (only a configured base URL may be one)"
        if host not in self.hosts:
            return f"host {host} is not one of this spider's sites"
        return None


class RequestGuardMiddleware:
    """A downloader middleware that runs first: refuses requests the spider's Targets do not allow, and every
    request once the crawl is stopping."""

    def __init__(self, crawler):
        self.crawler = crawler
        self.resolved: dict[str, str | None] = {}  # host name -> an internal address it resolves to

    @classmethod
    def from_crawler(cls, crawler) -> "RequestGuardMiddleware":
        return cls(crawler)

    async def process_request(self, request):
        if stop_requested(self.crawler):
            raise not_sent(request)
        targets: Targets | None = getattr(self.crawler.spider, "targets", None)
        if targets is None:
            return None
        if why := targets.refusal(request.url):
            raise RequestRefused("refused_url", f"refused {request.url}: {why}")
        _, host, _ = _origin(request.url)
        if not targets.configured(request.url) and not _is_ip(host):
            if host not in self.resolved:
                from twisted.internet import threads

                self.resolved[host] = await maybe_deferred_to_future(threads.deferToThread(internal_resolution, host))
            if address := self.resolved[host]:
                raise RequestRefused("refused_url", f"refused {request.url}: {host} resolves to the internal "
                                                    f"address {address}")
        return None
