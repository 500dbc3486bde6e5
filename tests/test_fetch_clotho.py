"""wt5k-fetch clotho against a Zenodo-like loopback server (Range, md5, redirects, cut transfers) serving tiny 7z
archives built here with py7zr: layout, resume, checks, and every bad archive of issue 15 refused and reported."""
from __future__ import annotations

import errno
import hashlib
import io
import json
import os

import numpy as np
import pytest
import soundfile as sf

from crawler.fetch import extract
from crawler.fetch.cli import main
from crawler.fetch.extract import ExtractError, extract_7z
from tests.fetch_helpers import server  # noqa: F401  (the loopback fixture)

py7zr = pytest.importorskip("py7zr")


def wav_bytes(seconds: float, seed: int) -> bytes:
    buf = io.BytesIO()
    data = np.random.default_rng(seed).uniform(-0.5, 0.5, int(8000 * seconds)).astype("float32")
    sf.write(buf, data, 8000, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def make_7z(path, entries: dict[str, bytes], unsafe: bool = False) -> bytes:
    """A 7z of ``entries``; ``unsafe`` lets py7zr write names it would refuse (``../x``, absolute)."""
    with pytest.MonkeyPatch.context() as mp:
        if unsafe:
            mp.setattr(py7zr.py7zr, "check_archive_path", lambda name: True)
        with py7zr.SevenZipFile(path, "w") as z:
            for name, data in entries.items():
                z.writestr(data, name)
    return path.read_bytes()


def captions_csv(names: list[str]) -> bytes:
    lines = ["file_name,caption_1,caption_2,caption_3,caption_4,caption_5"]
    lines += [f"{n},a,b,c,d,e" for n in names]
    return ("\n".join(lines) + "\n").encode()


def publish(server, tmp_path, files: dict[str, tuple[str, str, bytes]], rows: dict[str, int] | None = None):
    """Serve ``files`` (name -> (split, kind, bytes)) as a Zenodo record and write the registry naming them with
    public zenodo.org URLs (the endpoint override points those at the server)."""
    entries = []
    for name, (split, kind, body) in files.items():
        path = f"/records/4783391/files/{name}"
        server.files[path] = body
        entry = {"name": name, "url": f"https://zenodo.org{path}?download=1", "md5": hashlib.md5(body).hexdigest(),
                 "split": split, "kind": kind}
        if kind == "captions" and rows and split in rows:
            entry["rows"] = rows[split]
        entries.append(entry)
    registry = tmp_path / "registry.json"
    registry.write_text(json.dumps({"files": entries}))
    return registry


@pytest.fixture
def zenodo(server, monkeypatch, restore_progress_bars):
    monkeypatch.setenv("WT5K_ZENODO_ENDPOINT", server.url)
    return server


def test_built_in_registries_are_complete():
    from crawler.fetch.clotho import load_registry

    for version, splits in (("v1", {"development", "evaluation"}),
                            ("v2", {"development", "validation", "evaluation"}),
                            ("v2.1", {"development", "validation", "evaluation"})):
        files = load_registry(version)
        assert {f["split"] for f in files} == splits and len(files) == 3 * len(splits)
        assert all(f["url"].startswith("https://zenodo.org/record/") for f in files)
    dev = {f["kind"]: f for f in load_registry("v2.1") if f["split"] == "development"}
    assert dev["audio"]["md5"] == "c8b05bc7acdb13895bb3c6a29608667e" and dev["captions"]["rows"] == 3839


def test_fetch_layout_resume_and_row_count_warning(zenodo, tmp_path, monkeypatch, capsys):
    dev = {f"development/{n}.wav": wav_bytes(0.3, i) for i, n in enumerate(("a", "b", "c"))}
    archive = make_7z(tmp_path / "dev.7z", dev)
    registry = publish(zenodo, tmp_path, {
        "clotho_audio_development.7z": ("development", "audio", archive),
        "clotho_captions_development.csv": ("development", "captions", captions_csv(["a.wav", "b.wav"])),
        "clotho_metadata_development.csv": ("development", "metadata", b"file_name,keywords\na.wav,x\n"),
    }, rows={"development": 3})
    # Zenodo answers the /record/ address (aac-datasets' URLs) with a redirect to /records/ (same host: followed)
    data = json.loads(registry.read_text())
    data["files"][0]["url"] = "https://zenodo.org/record/4783391/files/clotho_audio_development.7z?download=1"
    registry.write_text(json.dumps(data))
    zenodo.redirects["/record/4783391/files/clotho_audio_development.7z"] = \
        "/records/4783391/files/clotho_audio_development.7z"
    zenodo.cuts, zenodo.cut_after = 1, len(archive) // 2  # the first transfer breaks midway: resumed with Range
    out = tmp_path / "data"
    assert main(["clotho", "--out", str(out), "--registry", str(registry), "--quiet"]) == 0
    root = out / "clotho" / "v2.1"
    assert sorted(p.name for p in (root / "development").iterdir()) == ["a.wav", "b.wav", "c.wav"]
    assert (root / "development" / "b.wav").read_bytes() == dev["development/b.wav"]
    assert (root / "clotho_captions_development.csv").is_file() and (root / "clotho_metadata_development.csv").is_file()
    gets = zenodo.gets("/records/4783391/files/clotho_audio_development.7z")
    assert len(gets) == 2 and gets[1]["Range"] == f"bytes={len(archive) // 2}-"
    assert len(zenodo.gets("/record/4783391/files/clotho_audio_development.7z")) == 2  # each through the redirect
    err = capsys.readouterr().err
    assert "2 caption rows, Clotho v2.1 development has 3" in err
    assert not list(root.rglob("*.part")) and not list(root.glob("*.partial"))
    n = len(zenodo.requests)
    assert main(["clotho", "--out", str(out), "--registry", str(registry), "--quiet"]) == 0
    assert len(zenodo.requests) == n, "a second run fetches nothing"


def test_wrong_md5_and_html_are_kept_aside_never_extracted(zenodo, tmp_path, capsys):
    archive = make_7z(tmp_path / "eval.7z", {"evaluation/a.wav": wav_bytes(0.2, 1)})
    registry = publish(zenodo, tmp_path, {"clotho_audio_evaluation.7z": ("evaluation", "audio", archive),
                                          "clotho_captions_evaluation.csv": ("evaluation", "captions", b"x\n")})
    corrupted = bytearray(archive)
    corrupted[len(archive) // 2] ^= 0xFF
    zenodo.files["/records/4783391/files/clotho_audio_evaluation.7z"] = bytes(corrupted)
    zenodo.files["/records/4783391/files/clotho_captions_evaluation.csv"] = b"<!DOCTYPE html><html>login</html>"
    out = tmp_path / "data"
    assert main(["clotho", "--out", str(out), "--registry", str(registry), "--quiet"]) == 1
    err = capsys.readouterr().err
    root = out / "clotho" / "v2.1"
    assert "clotho_audio_evaluation.7z: md5" in err and "does not match" in err
    assert "clotho_captions_evaluation.csv: md5" in err and "(a web page (HTML))" in err
    assert (root / "archives" / "clotho_audio_evaluation.7z.rejected").is_file()
    assert not (root / "archives" / "clotho_audio_evaluation.7z").exists() and not (root / "evaluation").exists()
    assert not (root / "clotho_captions_evaluation.csv").exists()


def test_unsafe_entries_are_refused_and_reported(zenodo, tmp_path, monkeypatch, capsys):
    (tmp_path / "real.wav").write_bytes(wav_bytes(0.2, 2))
    os.symlink("/etc/passwd", tmp_path / "link.wav")
    bad = make_7z(tmp_path / "bad.7z", {"validation/ok.wav": wav_bytes(0.2, 3), "../escape.wav": b"evil",
                                        "/tmp/absolute.wav": b"evil", "validation/../../up.wav": b"evil"},
                  unsafe=True)
    with py7zr.SevenZipFile(tmp_path / "link.7z", "w") as z:
        z.write(tmp_path / "real.wav", "real.wav")
        z.write(tmp_path / "link.wav", "link.wav")
    registry = publish(zenodo, tmp_path, {"clotho_audio_validation.7z": ("validation", "audio", bad)})
    out = tmp_path / "data"
    assert main(["clotho", "--out", str(out), "--registry", str(registry), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "'../escape.wav' refused (climbs out" in err and "'/tmp/absolute.wav' refused (absolute path)" in err
    assert "'validation/../../up.wav' refused" in err
    root = out / "clotho" / "v2.1"
    assert [p.name for p in (root / "validation").iterdir()] == ["ok.wav"]
    assert not (out / "clotho" / "escape.wav").exists() and not (root / "escape.wav").exists()
    assert not os.path.exists("/tmp/absolute.wav") and not (out / "clotho" / "up.wav").exists()
    report = extract_7z(tmp_path / "link.7z", tmp_path / "links")
    assert report.refused == [("link.wav", "symbolic link")]
    assert [p.name for p in (tmp_path / "links").iterdir()] == ["real.wav"]


def test_truncated_archive_is_one_line_naming_the_file(zenodo, tmp_path, capsys):
    whole = make_7z(tmp_path / "dev.7z", {"development/a.wav": wav_bytes(0.5, 4)})
    registry = publish(zenodo, tmp_path, {"clotho_audio_development.7z": ("development", "audio", whole[:len(whole) // 2])})
    out = tmp_path / "data"
    assert main(["clotho", "--out", str(out), "--registry", str(registry), "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "clotho_audio_development.7z: cannot extract" in err[0]
    assert not (out / "clotho" / "v2.1" / "development").exists()


def test_interrupted_extraction_resumes_and_never_shows_a_half_file(tmp_path, monkeypatch):
    entries = {f"development/{i}.wav": wav_bytes(0.2, 10 + i) for i in range(4)}
    archive = tmp_path / "dev.7z"
    make_7z(archive, entries)
    dest = tmp_path / "out" / "development"
    real_write, calls = extract._EntryWriter.write, []

    def full_disk(self, s):  # the third entry meets a full disk
        if self.path.name == "2.wav":
            raise OSError(errno.ENOSPC, "No space left on device")
        calls.append(self.path.name)
        return real_write(self, s)

    monkeypatch.setattr(extract._EntryWriter, "write", full_disk)
    with pytest.raises(ExtractError, match="dev.7z"):
        extract_7z(archive, dest)
    assert not dest.exists(), "nothing under the final name before every entry is in"
    staging = dest.with_name("development.partial")
    assert {p.name for p in staging.iterdir() if p.suffix == ".wav"} <= {"0.wav", "1.wav", "3.wav"}
    monkeypatch.setattr(extract._EntryWriter, "write", real_write)
    report = extract_7z(archive, dest)
    assert report.kept + report.extracted == 4 and report.kept >= 1
    assert {p.name: p.read_bytes() for p in dest.iterdir()} == {
        name.split("/")[1]: data for name, data in entries.items()}
    assert not staging.exists()


def test_bad_registry_and_unknown_split_are_one_line(tmp_path, capsys):
    reg = tmp_path / "r.json"
    reg.write_text(json.dumps({"files": [{"name": "../x.7z", "url": "https://zenodo.org/x", "md5": "0" * 32,
                                          "split": "development", "kind": "audio"}]}))
    assert main(["clotho", "--out", str(tmp_path), "--registry", str(reg)]) == 2
    assert "must be a plain file name" in capsys.readouterr().err
    assert main(["clotho", "--out", str(tmp_path), "--version", "v1", "--splits", "validation"]) == 2
    assert "validation not in Clotho v1's file list" in capsys.readouterr().err


def test_a_full_disk_during_a_download_keeps_what_came_and_resumes(server, tmp_path, monkeypatch):
    """ENOSPC mid-transfer: the bytes written stay in the .part, the error names the URL and the part, and the
    same download after room is made continues with a Range request."""
    from crawler.fetch import download as dl
    from crawler.fetch.download import DownloadError, checked_download

    body = wav_bytes(2.0, 7)
    server.files["/f.wav"] = body
    real_open, limit = open, len(body) // 3

    class FullDisk:
        def __init__(self, f):
            self.f = f

        def write(self, b):
            if self.f.tell() + len(b) > limit:
                self.f.write(b[:max(limit - self.f.tell(), 0)])
                raise OSError(errno.ENOSPC, "No space left on device")
            return self.f.write(b)

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    monkeypatch.setattr(dl, "open", lambda *a, **k: FullDisk(real_open(*a, **k)), raising=False)
    target = tmp_path / "f.wav"
    with pytest.raises(DownloadError, match=rf"/f.wav: transfer interrupted .*No space left.*{limit} bytes kept"):
        checked_download(server.url + "/f.wav", target, expected={"md5": hashlib.md5(body).hexdigest()},
                         retries=0, progress=False, log=lambda s: None)
    assert not target.exists() and (tmp_path / "f.wav.part").stat().st_size == limit
    monkeypatch.undo()
    checked_download(server.url + "/f.wav", target, expected={"md5": hashlib.md5(body).hexdigest()},
                     retries=0, progress=False, log=lambda s: None)
    assert target.read_bytes() == body and server.gets("/f.wav")[-1]["Range"] == f"bytes={limit}-"
