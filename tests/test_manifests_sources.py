"""The source registry (manifests/sources.py): one entry makes a new site's links readable by the published-CSV
round trip, its other formats known to the replay spider, and its Table 1 facts known to curation."""
from __future__ import annotations

import pytest

from crawler.spiders.manifest import candidate_urls
from manifests import (ManifestRow, manifest_to_published, published_to_manifest, read_published_csv, source_id_of,
                       source_of, write_published_csv)
from manifests.sources import SOURCES, Source, register, source_info


@pytest.fixture
def third_source():
    source = register(Source(
        name="tinysite", hosts=("tiny-sounds.example",),
        id_patterns=(("view_link", r"tiny-sounds\.example/sound/(\d+)\.html"),
                     ("download_link", r"/media/(\d+)\.\w+$")),
        audio_url_templates=("{root}/media/{id}.flac", "{root}/media/{id}.wav"), language="French",
        text_source="web metadata (title, description)"))
    yield source
    del SOURCES["tinysite"]


def test_a_registered_source_survives_export_and_import(tmp_path, third_source):
    row = ManifestRow(id="tinysite:12", source="tinysite", audio_path="audio/tinysite/12.flac",
                      caption="Bicycle bell. Two rings.", title="Bicycle bell", description="Two rings.",
                      view_link="https://www.tiny-sounds.example/sound/12.html",
                      download_link="https://tiny-sounds.example/media/12.wav")
    path = write_published_csv(tmp_path / "p.csv", manifest_to_published([row]))
    back = published_to_manifest(read_published_csv(path))
    assert [(r.id, r.source, r.title, r.description) for r in back] == [(row.id, "tinysite", row.title,
                                                                         row.description)]
    assert candidate_urls("tinysite", "12", row.download_link) == [
        row.download_link, "https://tiny-sounds.example/media/12.flac"]
    assert source_info("tinysite").language == "French" and not source_info("tinysite").captioned


def test_unregistered_sources_keep_working_with_unknown_facts():
    assert source_of("https://www.other.example/a/1.html") == "other.example"
    with pytest.raises(ValueError, match="cannot find a sound id"):
        source_id_of("https://other.example/a/1.html")
    info = source_info("other.example")
    assert (info.language, info.text_source, info.hosts) == ("unknown", "unknown", ())


def test_registry_holds_the_papers_sources():
    assert source_of("https://www.soundbible.com/2219-Airplane.html") == "soundbible"
    assert source_info("clotho").captioned and source_info("audiocaps").captioned
    assert not source_info("soundbible").captioned and source_info("bigsoundbank").language == "English"
    assert candidate_urls("soundbible", "2219", "", "https://soundbible.com/2219-A.html") == [
        "https://soundbible.com/grab.php?id=2219&type=wav", "https://soundbible.com/grab.php?id=2219&type=mp3"]
