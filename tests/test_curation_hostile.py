"""Crawl records from elsewhere, written to break curation, run through ``curate``: every record ends in the
manifest or in rejects.csv, nothing is written outside --out and nothing read outside the crawl folder, no
two manifest rows of different ids share an audio file, and each row's audio is the sound its record named
(checked by content: every input is a tone of its own frequency)."""
import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from curation.cli import main
from curation.pipeline import CurateOptions, curate
from curation.sources import read_rejects
from tests.synth import sine, write
from manifests import read_manifest, resolve_audio

SR = 22050


def _tone(path: Path, k: int) -> Path:
    return write(path, sine(SR, 0.3, 400 + 150 * k, 0.5), SR, "PCM_16")


def _freq(path: Path) -> float:
    y, sr = sf.read(str(path))
    spec = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    return float(np.argmax(spec) * sr / len(y))


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for dirpath, _, names in os.walk(root):
        for n in names:
            p = Path(dirpath, n)
            st = p.lstat()
            out[str(p.relative_to(root))] = (st.st_size, st.st_mtime_ns)
    return out


@pytest.fixture()
def hostile(tmp_path):
    """A crawl folder with one record per hostile case; returns (raw dir, {id: expected frequency or reject
    reason}, outside file)."""
    raw = tmp_path / "raw" / "site"
    files = raw / "files"
    outside = _tone(tmp_path / "elsewhere" / "outside.wav", 0)  # a real sound, but not the crawl's
    (tmp_path / "secret.txt").write_text("not for curation")
    recs, expect = [], {}

    def add(rec: dict, outcome, k: int | None = None, name: str | None = None):
        if k is not None:
            rel = f"files/{name or k}.wav"
            _tone(raw / rel, k)
            rec.setdefault("file_path", rel)
        rec.setdefault("status", "ok")
        rec.setdefault("title", f"Title {rec['id']}")
        rec.setdefault("description", "A test sound.")
        recs.append(rec)
        expect[rec["id"]] = outcome if k is None else 400 + 150 * k

    add({"id": "site:up", "source": "../../../escaped", "source_id": "x"}, None, 1)  # source leaves --out
    add({"id": "site:a/b", "source": "site", "source_id": "a/b"}, None, 2)           # '/' cleaned to '_' ...
    add({"id": "site:a_b", "source": "site", "source_id": "a_b"}, None, 3)           # ... must not meet a_b
    add({"id": "noprefix1"}, None, 4)                                               # no source:, no source_id
    add({"id": "noprefix2"}, None, 5)
    add({"id": "site:", "source": "site"}, None, 6)                                 # empty source_id
    add({"id": "site:.."}, None, 7)
    add({"id": "site:."}, None, 8)
    add({"id": "site:Bell"}, None, 9)                                               # case-only difference
    add({"id": "site:bell"}, None, 10)
    add({"id": "site:caf\u00e9"}, None, 11)                                         # NFC and NFD forms
    add({"id": "site:cafe\u0301"}, None, 12)
    add({"id": "site:" + "long" * 100}, None, 13)                                   # over-long name
    add({"id": "site:ctl\x01\x7f\nname", "title": "Control\x00chars", "description": "d\ud800x"}, None, 14)
    add({"id": "site:abs_out", "file_path": str(outside)}, "unsafe_path")
    add({"id": "site:dotdot_out", "file_path": "../../elsewhere/outside.wav"}, "unsafe_path")
    add({"id": "site:passwd", "file_path": "/etc/passwd"}, "unsafe_path")
    add({"id": "site:secret", "file_path": "../../secret.txt"}, "unsafe_path")
    add({"id": "site:nul", "file_path": "files/1.wav\x00.txt"}, "bad_path")
    add({"id": "site:notstr", "file_path": ["files/1.wav"]}, "bad_path")
    (files / "link.wav").symlink_to(outside)
    add({"id": "site:symlink", "file_path": "files/link.wav"}, "unsafe_path")
    add({"id": "site:longpath", "file_path": "files/" + "x" * 300 + ".wav"}, "bad_path")  # ENAMETOOLONG
    add({"id": "site:abs_in", "file_path": str(files / "15.wav")}, None, 15)         # absolute but inside: fine
    add({"id": "site:dotdot_in", "file_path": "files/../files/16.wav"}, None, 16)
    lines = [json.dumps(r).encode() for r in recs]
    lines[0] = b"\xef\xbb\xbf" + lines[0]  # a byte order mark before the first record: still a record
    # Lines that are no records: each becomes a reject named by file and line, and the run goes on.
    bad_lines = [
        b'{"id": "site:latin1", "title": "caf\xe9", "status": "ok"}',  # not UTF-8
        b'{"id": "site:torn", "title": ',                                # cut off
        b'\x00\x00\x00\x00',                                            # NULs
        b'["a", "list"]',
        b'{"title": "no id"}',
        b'{"id": "site:nul\\u0000id", "status": "ok", "file_path": "files/1.wav"}',  # NUL in the id
        b'{"id": "site:\\ud800", "status": "ok", "file_path": "files/1.wav"}',       # lone surrogate id
        b'{"id": "site:tags", "status": "ok", "file_path": "files/1.wav", "tags": 5}',
    ]
    for b in bad_lines:
        lines.append(b)
        expect[f"site/items.jsonl:{len(lines)}"] = "bad_record"
    (raw / "items.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    return raw.parent, expect, outside


def test_hostile_records_cannot_escape_collide_or_abort(hostile, tmp_path):
    raw, expect, outside = hostile
    out = tmp_path / "out"
    before = _snapshot(tmp_path)
    rep = curate(out, raw=[raw], options=CurateOptions(workers=1, progress=False, figures=False))
    after = _snapshot(tmp_path)
    # nothing written or changed outside --out
    changed = {p for p in after if p not in before or after[p] != before[p]}
    assert changed and all(p.startswith("out" + os.sep) for p in changed), sorted(changed)
    rows = read_manifest(rep.manifest)
    rejects = {r.id: r for r in read_rejects(rep.rejects)}
    assert {r.id for r in rows} | set(rejects) == set(expect)  # every record accounted for
    assert not {r.id for r in rows} & set(rejects)
    by_path: dict[str, str] = {}
    for r in rows:
        assert by_path.setdefault(r.audio_path, r.id) == r.id, f"{r.id} and {by_path[r.audio_path]} share a file"
        audio = resolve_audio(rep.manifest, r)
        assert audio.is_relative_to(out.resolve()) and audio.is_file()
        # the sound its record named, not another record's
        assert _freq(audio) == pytest.approx(expect[r.id], abs=8), r.id
    for i, want in expect.items():
        if isinstance(want, str):
            stage, _, reason = want.rpartition("/")
            assert (rejects[i].stage, rejects[i].reason) == (stage or "input", reason), (i, rejects[i])
            assert rejects[i].detail
            if want in ("unsafe_path", "bad_path"):
                assert "allow-outside" in rejects[i].detail or "path" in rejects[i].detail
    assert str(outside) not in {str(resolve_audio(rep.manifest, r)) for r in rows}
    # a second run reuses every result (the paths are deterministic)
    again = curate(out, raw=[raw], options=CurateOptions(workers=1, progress=False, figures=False))
    assert again.processed == 0 and again.n_rows == rep.n_rows


def test_allow_outside_admits_files_under_the_given_root(hostile, tmp_path, capsys):
    raw, expect, outside = hostile
    out = tmp_path / "out"
    assert main(["run", "--raw", str(raw), "--out", str(out), "--workers", "1", "--no-progress", "--no-figures",
                 "--allow-outside", str(outside.parent)]) == 0
    rows = {r.id: r for r in read_manifest(out / "wavtext5k.csv")}
    assert _freq(resolve_audio(out / "wavtext5k.csv", rows["site:abs_out"])) == pytest.approx(400, abs=8)
    with open(out / "rejects.csv", newline="", encoding="utf-8") as f:
        rejects = {r["id"]: r for r in csv.DictReader(f)}
    for i in ("site:dotdot_out", "site:symlink"):  # the same file by other ways: read, then found a duplicate
        assert rejects[i]["detail"] == "duplicate_of=site:abs_out"
    assert rejects["site:passwd"]["reason"] == rejects["site:secret"]["reason"] == "unsafe_path"  # outside ROOT
