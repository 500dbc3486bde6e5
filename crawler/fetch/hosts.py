"""The hosts the toolkit downloads from outside Scrapy: base URL per host (overridable, for a mirror or the
tests) and where each host may redirect a download to."""
from __future__ import annotations

import os

DEFAULT_ENDPOINTS = {"zenodo": "https://zenodo.org", "hf": "https://huggingface.co"}
ENDPOINT_ENV = {"zenodo": ("WT5K_ZENODO_ENDPOINT",), "hf": ("WT5K_HF_ENDPOINT", "HF_ENDPOINT")}
# where each host's files may be redirected to (a download may always stay on the host it asked)
REDIRECT_HOSTS = {"zenodo": ("zenodo.org", ".zenodo.org"),
                  "hf": ("huggingface.co", ".huggingface.co", ".hf.co")}


class UnknownHostError(ValueError):
    """An endpoint override for a host the toolkit does not know."""


def endpoints(overrides: dict[str, str] | None = None) -> dict[str, str]:
    """Base URL per host: ``overrides``, then the environment, then the public hosts."""
    unknown = set(overrides or {}) - set(DEFAULT_ENDPOINTS)
    if unknown:
        raise UnknownHostError(f"unknown endpoint host(s) {sorted(unknown)}; known: {sorted(DEFAULT_ENDPOINTS)}")
    out = {}
    for host, default in DEFAULT_ENDPOINTS.items():
        env = next((os.environ[v] for v in ENDPOINT_ENV[host] if os.environ.get(v)), None)
        out[host] = ((overrides or {}).get(host) or env or default).rstrip("/")
    return out


def rebase(url: str, eps: dict[str, str]) -> str:
    """``url`` with a public host's base replaced by its endpoint (a mirror, or a loopback server in tests)."""
    for host, default in DEFAULT_ENDPOINTS.items():
        if url.startswith(default + "/") and eps.get(host, default) != default:
            return eps[host] + url[len(default):]
    return url
