"""Switchable faults of the mirror: the ways the real sites (or the network) fail a crawler."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Faults:
    """Sound-level faults name full ids ("soundbible:2219", "bigsoundbank:0100") and apply to every audio
    URL of that sound (grab.php, static files, /UPLOAD/ in every format), so no fallback can rescue it."""
    html_for_bots: bool = False          # 200 text/html instead of audio when the User-Agent is not a browser
    wav_gone: bool = False               # BigSoundBank today: /UPLOAD/wav/ links redirect to an HTML page
    dead_links: set[str] = field(default_factory=set)      # audio redirects (302) to an HTML page
    not_found: set[str] = field(default_factory=set)       # 404
    server_error: set[str] = field(default_factory=set)    # 500
    rate_limited: dict[str, int] = field(default_factory=dict)  # id -> how many 429 answers per URL first
    retry_after_s: float = 1.0           # the Retry-After header sent with 429
    slow: set[str] = field(default_factory=set)            # answer only after slow_s seconds
    slow_s: float = 5.0
    truncated: set[str] = field(default_factory=set)       # Content-Length promises more than is sent
    empty: set[str] = field(default_factory=set)           # 200 with an empty body
    unsized: set[str] = field(default_factory=set)         # no Content-Length: the body ends at the close
    stalled: set[str] = field(default_factory=set)         # half the body, then a pause of slow_s
    robots_disallow: list[str] = field(default_factory=list)  # extra Disallow lines (both sites)
    hostile_names: bool = False          # Content-Disposition file names that climb out of any folder

    @classmethod
    def from_specs(cls, specs: list[str]) -> "Faults":
        """Parse command-line specs: `html_for_bots`, `wav_gone`, `hostile_names`, `dead_links=ID,ID`, `404=ID`,
        `500=ID`, `429=ID[:HITS]`, `slow=ID`, `truncated=ID`, `empty=ID`, `unsized=ID`, `stalled=ID`,
        `robots=/PATH`."""
        f = cls()
        aliases = {"404": "not_found", "500": "server_error", "429": "rate_limited", "robots": "robots_disallow"}
        for spec in specs:
            name, _, value = spec.partition("=")
            name = aliases.get(name, name)
            values = [v for v in value.split(",") if v]
            if name in ("html_for_bots", "wav_gone", "hostile_names"):
                setattr(f, name, True)
            elif name == "rate_limited":
                for v in values:
                    sid, _, hits = v.rpartition(":") if v.count(":") > 1 else (v, "", "1")
                    f.rate_limited[sid] = int(hits)
            elif name == "robots_disallow":
                f.robots_disallow.extend(values)
            elif name in ("dead_links", "not_found", "server_error", "slow", "truncated", "empty", "unsized",
                          "stalled"):
                getattr(f, name).update(values)
            else:
                raise ValueError(f"unknown fault {spec!r}; see `wt5k-mirror --help`")
        return f
