"""`make data` end to end against loopback servers: Clotho from a Zenodo-like server (7z archives built here),
AudioCaps through yt-dlp from a media server, WavText5K replayed from the offline mirror; all three curated into
the manifests the paper configs read, and the coverage table printed beside the paper's figures."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from crawler.mirror import start_mirror
from manifests.schema import read_manifest
from tests.fetch_helpers import server  # noqa: F401  (the loopback fixture)
from tests.test_fetch_audiocaps import MediaServer, source_wav, write_csv
from tests.test_fetch_clotho import captions_csv, make_7z, publish, wav_bytes

ROOT = Path(__file__).resolve().parents[1]

pytest.importorskip("py7zr")
pytest.importorskip("yt_dlp")


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_data_end_to_end(server, tmp_path, edge_csv):
    files, seed = {}, iter(range(100))  # every clip different: curation drops duplicates across splits
    for split, names in (("development", ["d1.wav", "d2.wav"]), ("validation", ["v1.wav"]),
                         ("evaluation", ["e1.wav", "e2.wav"])):
        archive = make_7z(tmp_path / f"{split}.7z", {f"{split}/{n}": wav_bytes(0.5, next(seed)) for n in names})
        files[f"clotho_audio_{split}.7z"] = (split, "audio", archive)
        files[f"clotho_captions_{split}.csv"] = (split, "captions", captions_csv(names))
        files[f"clotho_metadata_{split}.csv"] = (split, "metadata", b"file_name,keywords\n")
    registry = publish(server, tmp_path, files)
    media_dir = tmp_path / "media"
    media_dir.mkdir()
    media = MediaServer(media_dir)
    for i, ytid in enumerate(("TRAINaaaaaa", "VALaaaaaaaa", "TESTaaaaaaa")):
        source_wav(media_dir, ytid, 12, i)
    csvs = {"train": write_csv(tmp_path / "train.csv", [("TRAINaaaaaa", 1, "a train caption"),
                                                        ("GONEaaaaaaa", 1, "a clip no longer online")]),
            "val": write_csv(tmp_path / "val.csv", [("VALaaaaaaaa", 2, f"val caption {i}") for i in range(5)]),
            "test": write_csv(tmp_path / "test.csv", [("TESTaaaaaaa", 0, f"test caption {i}") for i in range(5)])}
    data = tmp_path / "data"
    try:
        with start_mirror(edge_csv) as mirror:
            proc = subprocess.run(
                ["make", "-o", "setup", "data", f"VENV={Path(sys.executable).parent.parent}", f"DATA={data}",
                 f"CLOTHO_ARGS=--registry {registry} --quiet",
                 "AUDIOCAPS_ARGS=" + " ".join(f"--csv {k}={v}" for k, v in csvs.items())
                 + f" --url-template {media.template} --delay 0 --quiet",
                 f"PUBLISHED={edge_csv}",
                 f"CRAWL_ARGS=--no-polite --soundbible-url {mirror.soundbible_url} "
                 f"--bigsoundbank-url {mirror.bigsoundbank_url} --log-level WARNING",
                 "CURATE_ARGS=--workers 1 --no-figures --no-progress",
                 "CONVERT_ARGS=--workers 1 --no-figures --no-progress"],
                cwd=ROOT, capture_output=True, text=True, timeout=300,
                env={**os.environ, "WT5K_ZENODO_ENDPOINT": server.url, "PYTHONPATH": str(ROOT)})
    finally:
        media.httpd.shutdown()
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # the manifests at the paths the paper configs read
    audiocaps = read_manifest(data / "audiocaps" / "audiocaps.csv")
    assert {(r.split, r.id) for r in audiocaps} == {("train", "audiocaps:TRAINaaaaaa_1"),
                                                   ("val", "audiocaps:VALaaaaaaaa_2"), ("test", "audiocaps:TESTaaaaaaa_0")}
    clotho = read_manifest(data / "clotho" / "clotho.csv")
    assert {s: len({r.id for r in clotho if r.split == s}) for s in ("train", "val", "test")} == {
        "train": 2, "val": 1, "test": 2}
    assert len(clotho) == 5 * 5, "five captions per Clotho clip"
    wavtext5k = read_manifest(data / "curated" / "wavtext5k.csv")
    assert len(wavtext5k) > 10
    # coverage next to the paper's figures, per dataset and split
    out = proc.stdout
    table = out[out.index("dataset    split"):]
    assert "AudioCaps  train" in table and "40,582" in table and "4,348" in table and "Clotho     val" in table
    assert [line.split()[2] for line in table.splitlines() if line.startswith("AudioCaps  train")] == ["1"]
    assert "(the paper obtained 40,582 AudioCaps train clips)" in out
    assert "unavailable 1" in out  # the AudioCaps coverage per split, failures counted
