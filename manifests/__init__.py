"""Manifests: the CSV contract shared by curation, training and users (see manifests/README.md)."""
from .captions import CAPTION_MODES, caption_for, make_caption
from .published import (PUBLISHED_CSV, PublishedRow, manifest_to_published, parse_tags,
                        published_to_manifest, read_published_csv, source_id_of, source_of, write_published_csv)
from .schema import (COLUMNS, OPTIONAL_COLUMNS, ManifestError, ManifestRow, iter_manifest, read_manifest,
                     resolve_audio, validate_manifest, write_manifest)

__all__ = [
    "COLUMNS", "OPTIONAL_COLUMNS", "ManifestError", "ManifestRow", "iter_manifest", "read_manifest",
    "resolve_audio", "validate_manifest", "write_manifest", "PUBLISHED_CSV", "PublishedRow", "make_caption",
    "manifest_to_published", "parse_tags", "published_to_manifest", "read_published_csv", "source_id_of",
    "source_of", "write_published_csv", "CAPTION_MODES", "caption_for",
]
