"""File digests, the one helper every stage uses (crawl records, curated audio, pretrained weights, indexes)."""
from __future__ import annotations

import hashlib
import os

CHUNK = 1 << 20


def file_digests(path: str | os.PathLike, algorithms: tuple[str, ...] = ("sha256",)) -> dict[str, str]:
    """Hex digests of a file by algorithm name (``hashlib`` names), the file read once in 1 MiB chunks."""
    hashes = {name: hashlib.new(name) for name in algorithms}
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            for h in hashes.values():
                h.update(chunk)
    return {name: h.hexdigest() for name, h in hashes.items()}


def sha256_file(path: str | os.PathLike) -> str:
    """The sha256 of a file, hex."""
    return file_digests(path)["sha256"]
