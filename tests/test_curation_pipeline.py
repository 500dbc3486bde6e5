"""curation.pipeline.curate end to end on a generated crawl output: every item accounted for, rejects with
stages and reasons, manifest content, resumability, no work on re-run, raw input untouched."""
import csv
import hashlib
import json
from pathlib import Path

import pytest
import soundfile as sf

import curation.pipeline as pipeline
from curation.cli import main
from curation.pipeline import CurateOptions, curate
from curation.sources import read_rejects
from tests.synth import make_broken_files, sine, write
from manifests import read_manifest, resolve_audio, validate_manifest


def _record(id_, title, desc, file_path, status="ok", error="", **kw):
    source, _, sid = id_.partition(":")
    rec = {"id": id_, "source": source, "source_id": sid, "title": title, "description": desc, "tags": ["a", " "],
           "author": "Mike Koenig", "license": "Attribution 3.0", "view_link": f"https://x/{sid}",
           "download_link": f"https://x/{sid}.wav", "audio_urls": [], "duration_s": None, "sample_rate": None,
           "bit_depth": None, "channels": None, "recorder": None, "listing_position": 1,
           "crawl_time": "2026-01-01T00:00:00Z", "spider": source, "status": status, "error": error,
           "file_path": file_path, "file_size": None, "sha256": None, "audio_format": "wav"}
    rec.update(kw)
    return rec


@pytest.fixture()
def raw(tmp_path):
    """A crawl output of two spiders with one item per interesting case; returns (raw dir, expected outcomes)."""
    raw = tmp_path / "raw"
    sb, bsb = raw / "soundbible", raw / "bigsoundbank"
    broken = make_broken_files(sb / "files" / "broken")
    tone = sine(48000, 0.6, 600, 0.4, channels=2)
    write(sb / "files/1.wav", tone, 48000, "PCM_24")
    write(sb / "files/2.mp3", sine(22050, 0.8, 900, 0.4), 22050, "MPEG_LAYER_III", "MP3")
    write(sb / "files/3.flac", sine(48000, 0.6, 650, 0.4, channels=2), 48000, "PCM_24")
    write(bsb / "files/0007.wav", sine(96000, 0.5, 300, 0.3), 96000, "PCM_16")
    write(bsb / "files/0008.wav", sine(96000, 0.5, 300, 0.3), 96000, "PCM_16")  # exact duplicate of 0007
    write(bsb / "files/0009.wav", sine(44100, 0.5, 1300, 0.3), 44100, "PCM_16")
    write(bsb / "files/0010.wav", sine(44100, 0.5, 1700, 0.3), 44100, "PCM_16")
    write(bsb / "files/0012.wav", sine(44100, 0.5, 2100, 0.3), 44100, "PCM_16")
    write(bsb / "files/0013.wav", sine(44100, 0.5, 2500, 0.3), 44100, "PCM_16")
    sb_recs = [
        _record("soundbible:1", "Old title", "old", "files/1.wav"),
        _record("soundbible:2", "Dog  Bark\u200b", " A dog &amp; <b>cat</b>\tbark.", "files/2.mp3"),
        _record("soundbible:3", "Tone", " Stereo tone.", "files/3.flac"),
        _record("soundbible:4", "Gone", "404", None, status="http_error", error="HTTP 404"),
        _record("soundbible:5", "No file", "x", None, status="not_audio", error="text/html"),
    ]
    lines = [json.dumps(r) for r in sb_recs]
    lines.append(json.dumps(_record("soundbible:1", "Rain Storm", " Heavy rain.  Thunder.", "files/1.wav")))  # last wins
    lines.append("{not json")
    for i, (name, reason) in enumerate(sorted(broken.items()), 100):
        lines.append(json.dumps(_record(f"soundbible:{i}", f"Broken {i}", "desc", f"files/broken/{name}")))
    (sb / "items.jsonl").write_text("\n".join(lines) + "\n")
    bsb_recs = [
        _record("bigsoundbank:0007", "Engine", "Diesel engine.", "files/0007.wav"),
        _record("bigsoundbank:0008", "Engine copy", "Same file.", "files/0008.wav"),
        _record("bigsoundbank:0009", "Bell", "", "files/0009.wav"),                  # title only: kept
        _record("bigsoundbank:0012", " ", "<p></p>", "files/0012.wav"),             # no text after cleaning
        _record("bigsoundbank:0013", "", "A lone chime.", "files/0013.wav"),         # description only: kept
        _record("bigsoundbank:0010", "Excluded", "On the eval list.", "files/0010.wav"),
        _record("bigsoundbank:0011", "Missing", "File gone.", "files/0011.wav"),     # ok but file absent
    ]
    bsb.mkdir(parents=True, exist_ok=True)
    (bsb / "items.jsonl").write_text("\n".join(json.dumps(r) for r in bsb_recs) + "\n")
    (tmp_path / "exclude.txt").write_text("# eval overlap\nbigsoundbank:0010\n")
    expected = {f"soundbible:{i}": ("audio", reason) for i, (_, reason) in enumerate(sorted(broken.items()), 100)}
    expected.update({
        "soundbible:4": ("crawl", "http_error"), "soundbible:5": ("crawl", "not_audio"),
        "bigsoundbank:0008": ("dedupe", "duplicate"), "bigsoundbank:0012": ("text", "empty_metadata"),
        "bigsoundbank:0010": ("exclude", "excluded"), "bigsoundbank:0011": ("audio", "missing_file"),
    })
    kept = {"soundbible:1", "soundbible:2", "soundbible:3", "bigsoundbank:0007", "bigsoundbank:0009",
            "bigsoundbank:0013"}
    return raw, expected, kept


def _tree_digest(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _opts(tmp_path, **kw):
    return CurateOptions(exclude={"bigsoundbank:0010"}, progress=False, figures=kw.pop("figures", False), **kw)


def test_curate_accounts_for_every_item(raw, tmp_path):
    raw_dir, expected, kept = raw
    before = _tree_digest(raw_dir)
    out = tmp_path / "curated"
    rep = curate(out, raw=[raw_dir], options=_opts(tmp_path, workers=2, figures=True))
    assert _tree_digest(raw_dir) == before  # raw crawl output never modified

    rows = validate_manifest(rep.manifest, check_audio=True)
    assert {r.id for r in rows} == kept
    rejects = {r.id: r for r in read_rejects(out / "rejects.csv")}
    for id_, (stage, reason) in expected.items():
        assert (rejects[id_].stage, rejects[id_].reason) == (stage, reason), rejects[id_]
    assert rejects["bigsoundbank:0008"].detail == "duplicate_of=bigsoundbank:0007"
    assert rejects["soundbible:4"].detail == "HTTP 404"
    bad_line = [r for r in rejects.values() if r.id.endswith("items.jsonl:7")]
    assert bad_line and bad_line[0].reason == "bad_record"
    # every input id is either a manifest row or a reject, never both
    assert not kept & set(rejects) and set(expected) <= set(rejects)

    by_id = {r.id: r for r in rows}
    sb1 = by_id["soundbible:1"]  # the last record of the id won
    assert (sb1.title, sb1.description, sb1.caption) == ("Rain Storm", "Heavy rain. Thunder.", "Rain Storm. Heavy rain. Thunder.")
    assert sb1.description_raw == " Heavy rain.  Thunder." and sb1.tags == ["a"]
    sb2 = by_id["soundbible:2"]
    assert (sb2.title, sb2.description) == ("Dog Bark", "A dog & cat bark.")
    assert sb2.title_raw == "Dog  Bark\u200b"
    for r in rows:
        assert r.audio_path == f"audio/{r.source}/{r.id.partition(':')[2]}.flac"
        info = sf.info(str(resolve_audio(rep.manifest, r)))
        assert (info.samplerate, info.channels, r.sample_rate, r.channels) == (44100, 1, 44100, 1)
        assert r.duration_s == pytest.approx(info.duration, abs=1e-5)
        assert r.split in ("train", "val", "test")
        assert hashlib.sha256(resolve_audio(rep.manifest, r).read_bytes()).hexdigest() == r.sha256
    assert by_id["bigsoundbank:0007"].orig_sample_rate == 96000 and sb1.orig_channels == 2
    # the paper's filter: a title or a description suffices; the caption is whichever exists
    assert by_id["bigsoundbank:0009"].caption == "Bell" and by_id["bigsoundbank:0013"].caption == "A lone chime."
    assert rejects["bigsoundbank:0012"].detail == "no title and no description"
    assert sb1.tags_raw == "['a', ' ']"  # the crawled tags as they came, beside the cleaned ones

    stats = json.loads((out / "stats.json").read_text())
    total = {t["source"]: t for t in stats["table1"]}
    assert total["total"]["n_audios"] == len(kept) and total["soundbible"]["n_captions"] == 3
    assert total["total"]["duration_h"] == pytest.approx(sum(r.duration_s for r in rows) / 3600, abs=1e-3)
    assert "| soundbible |" in (out / "stats.md").read_text()
    for name in ("top_words.png", "duration_hist.png", "caption_length_hist.png"):
        assert (out / "figures" / name).stat().st_size > 1000


def test_rerun_does_no_work_and_changes_are_redone(raw, tmp_path):
    raw_dir, _, _ = raw
    out = tmp_path / "curated"
    first = curate(out, raw=[raw_dir], options=_opts(tmp_path, workers=1))
    manifest = (out / "wavtext5k.csv").read_bytes()
    second = curate(out, raw=[raw_dir], options=_opts(tmp_path, workers=1))
    assert first.processed > 0 and second.processed == 0 and second.reused == first.processed
    assert (out / "wavtext5k.csv").read_bytes() == manifest

    f = raw_dir / "bigsoundbank/files/0007.wav"
    f.write_bytes(f.read_bytes())  # touched, same content: converted again (inputs are not hashed), same manifest
    assert curate(out, raw=[raw_dir], options=_opts(tmp_path, workers=1)).processed == 1
    assert (out / "wavtext5k.csv").read_bytes() == manifest
    write(f, sine(96000, 0.7, 300, 0.3), 96000, "PCM_16")  # changed content: redone, and no longer a duplicate
    third = curate(out, raw=[raw_dir], options=_opts(tmp_path, workers=1))
    assert third.processed == 1
    assert "bigsoundbank:0008" in {r.id for r in read_manifest(third.manifest)}
    # other audio options: everything is redone
    assert curate(out, raw=[raw_dir], options=_opts(tmp_path, workers=1, audio=pipeline.AudioOptions(
        min_duration_s=0.2))).processed == first.processed


def test_interrupted_run_resumes_to_the_same_result(raw, tmp_path, monkeypatch):
    raw_dir, _, _ = raw
    full = curate(tmp_path / "full", raw=[raw_dir], options=_opts(tmp_path, workers=1))

    real_work, calls = pipeline._work, []

    def flaky(*args):
        calls.append(args[0])
        if len(calls) == 6:
            raise KeyboardInterrupt  # the run is killed part-way
        return real_work(*args)

    monkeypatch.setattr(pipeline, "_work", flaky)
    with pytest.raises(KeyboardInterrupt):
        curate(tmp_path / "resumed", raw=[raw_dir], options=_opts(tmp_path, workers=1))
    monkeypatch.setattr(pipeline, "_work", real_work)
    resumed = curate(tmp_path / "resumed", raw=[raw_dir], options=_opts(tmp_path, workers=1))
    assert resumed.reused == 5 and resumed.processed == full.processed - 5
    for name in ("wavtext5k.csv", "rejects.csv", "stats.json"):
        assert (tmp_path / "resumed" / name).read_text() == (tmp_path / "full" / name).read_text()


def test_caption_policies(raw, tmp_path):
    raw_dir, _, kept = raw
    rep = curate(tmp_path / "c", raw=[raw_dir], options=_opts(tmp_path, workers=1, require_both=True,
                                                               caption_mode="description"))
    rows = {r.id: r for r in read_manifest(rep.manifest)}
    assert set(rows) == kept - {"bigsoundbank:0009", "bigsoundbank:0013"}  # both texts required
    rejects = {r.id: r for r in read_rejects(rep.rejects)}
    assert [(rejects[i].stage, rejects[i].detail) for i in ("bigsoundbank:0009", "bigsoundbank:0012",
                                                             "bigsoundbank:0013")] == \
        [("text", "no description"), ("text", "no title and no description"), ("text", "no title")]
    assert rows["soundbible:1"].caption == "Heavy rain. Thunder."


def test_published_folder_input_and_cli(tmp_path):
    audio = tmp_path / "pub_audio"
    write(audio / "dog bark_0.wav", sine(32000, 0.5, 700, 0.3), 32000, "PCM_16")
    csv_path = tmp_path / "meta.csv"
    with open(csv_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["view_link", "download_link", "title", "description", "fname", "tags"])
        w.writerow(["https://soundbible.com/12-Dog-Bark.html", "https://soundbible.com/grab.php?id=12&type=wav",
                    "Dog Bark", " A dog barks.", "dog bark_0.wav", "['dog', ' ']"])
        w.writerow(["https://bigsoundbank.com/detail-0100-rain.html", "https://bigsoundbank.com/UPLOAD/wav/0100.wav",
                    "Rain", "Rain on a roof.", "rain_1.wav", ""])
        w.writerow(["https://soundbible.com/13-Leak.html", "https://soundbible.com/grab.php?id=13&type=wav",
                    "Leak", "A file from elsewhere.", "../meta.csv", ""])  # fname leading out of the folder
    out = tmp_path / "cur"
    assert main(["run", "--published", str(csv_path), str(audio), "--out", str(out), "--workers", "1",
                 "--no-progress", "--no-figures", "--format", "wav", "--channels", "keep"]) == 0
    rows = read_manifest(out / "wavtext5k.csv")
    assert [(r.id, r.caption, r.tags) for r in rows] == [("soundbible:12", "Dog Bark. A dog barks.", ["dog"])]
    assert rows[0].audio_path == "audio/soundbible/12.wav"
    assert sf.info(str(out / rows[0].audio_path)).subtype == "PCM_24"
    rej = read_rejects(out / "rejects.csv")
    assert [(r.id, r.stage, r.reason) for r in rej] == [("bigsoundbank:0100", "input", "missing_audio"),
                                                        ("soundbible:13", "input", "unsafe_path")]


def test_split_is_deterministic_and_follows_fractions():
    from curation.split import assign_split, parse_fractions
    ids = [f"soundbible:{i}" for i in range(3000)]
    splits = [assign_split(i) for i in ids]
    assert splits == [assign_split(i) for i in ids]
    for name, frac in zip(("train", "val", "test"), (0.8, 0.1, 0.1)):
        assert splits.count(name) / len(ids) == pytest.approx(frac, abs=0.03)
    assert {assign_split(i, (1, 0, 0)) for i in ids[:200]} == {"train"}
    assert {assign_split(i, (0, 0, 1)) for i in ids[:200]} == {"test"}
    with pytest.raises(ValueError):
        parse_fractions("0.5,0.1")


def test_cli_run_on_crawl_output_then_stats(raw, tmp_path, capsys):
    raw_dir, expected, kept = raw
    out = tmp_path / "cli"
    assert main(["run", "--raw", str(raw_dir), "--out", str(out), "--exclude", str(tmp_path / "exclude.txt"),
                 "--workers", "2", "--no-progress", "--no-figures"]) == 0
    printed = capsys.readouterr().out
    assert "dedupe/duplicate: 1" in printed and "exclude/excluded: 1" in printed
    assert {r.id for r in read_manifest(out / "wavtext5k.csv")} == kept
    assert main(["stats", str(out / "wavtext5k.csv"), "--json"]) == 0
    table = {t["source"]: t for t in json.loads(capsys.readouterr().out)}
    assert table["total"]["n_audios"] == len(kept)
    assert main(["stats", str(out / "wavtext5k.csv")]) == 0
    assert f"Headroom: 0 of {len(kept)} audios attenuated" in capsys.readouterr().out
    assert main(["stats", str(tmp_path / "nope.csv")]) == 2  # a clear error, not a traceback


def test_unexpected_error_costs_one_item_and_is_retried(raw, tmp_path, monkeypatch):
    raw_dir, _, kept = raw
    real = pipeline.process_audio

    def failing(src, dst, opts):
        if src.endswith("2.mp3"):
            raise RuntimeError("a bug in a decoder")
        return real(src, dst, opts)

    monkeypatch.setattr(pipeline, "process_audio", failing)
    first = curate(tmp_path / "o", raw=[raw_dir], options=_opts(tmp_path, workers=1))
    rej = {r.id: r for r in read_rejects(first.rejects)}
    assert (rej["soundbible:2"].stage, rej["soundbible:2"].reason) == ("audio", "error")
    assert "a bug in a decoder" in rej["soundbible:2"].detail
    monkeypatch.setattr(pipeline, "process_audio", real)
    second = curate(tmp_path / "o", raw=[raw_dir], options=_opts(tmp_path, workers=1))
    assert second.processed == 1 and {r.id for r in read_manifest(second.manifest)} == kept


def test_full_disk_stops_the_run_and_a_rerun_continues(raw, tmp_path, monkeypatch, capsys):
    """A full disk is no record's fault: rejecting every remaining item would be wrong, so the run stops (exit
    1, with a message), keeping what is done."""
    raw_dir, _, kept = raw
    real = pipeline.process_audio
    done = []

    def filling(src, dst, opts):
        if len(done) == 3:
            raise OSError(28, "No space left on device", str(dst))
        done.append(src)
        return real(src, dst, opts)

    monkeypatch.setattr(pipeline, "process_audio", filling)
    args = ["run", "--raw", str(raw_dir), "--out", str(tmp_path / "o"), "--workers", "1", "--no-progress",
            "--no-figures"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "No space left on device" in err and "run the same command again" in err
    assert not (tmp_path / "o" / "rejects.csv").exists()  # nothing was rejected for it
    monkeypatch.setattr(pipeline, "process_audio", real)
    assert main(args) == 0
    assert ", 3 reused from an earlier run" in capsys.readouterr().out  # it continued where it stopped
    assert kept < {r.id for r in read_manifest(tmp_path / "o" / "wavtext5k.csv")}  # (+ the id not excluded here)


_FAULTS_SCRIPT = """
import resource, sys
from curation.audio import AudioOptions, process_audio
from curation.pipeline import _init_worker
if sys.argv[3] == "tuned":
    _init_worker()
opts = AudioOptions(block_frames=1 << 14)
process_audio(sys.argv[1], sys.argv[2], opts)  # warm: imports, first allocations
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(3):
    process_audio(sys.argv[1], sys.argv[2], opts)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="glibc/Linux allocator tuning")
def test_worker_allocator_keeps_block_buffers(tmp_path):
    """Workers keep freed block buffers instead of faulting fresh pages in for every block (page faults are
    counted, not timed)."""
    import subprocess
    import sys
    src = write(tmp_path / "in.wav", sine(48000, 6.0, 440, 0.3, channels=2, noise=0.01), 48000, "PCM_24")
    faults = {}
    for mode in ("default", "tuned"):
        out = subprocess.run([sys.executable, "-c", _FAULTS_SCRIPT, str(src), str(tmp_path / "o.flac"), mode],
                             capture_output=True, text=True, check=True, cwd=Path(__file__).parent.parent)
        faults[mode] = int(out.stdout.split()[-1])
    assert faults["tuned"] * 3 < faults["default"], faults


def test_no_thread_is_left_behind(raw, tmp_path):
    """A thread left running would make the next run in this process start its workers the slow way."""
    import threading
    before = threading.active_count()
    curate(tmp_path / "c", raw=[raw[0]], options=_opts(tmp_path, workers=2))  # no progress bar
    assert threading.active_count() == before
