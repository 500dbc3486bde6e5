"""The search index on known embeddings: exact top-k, all three query kinds, persistence, zero-shot, errors."""
import json

import numpy as np
import pytest

from manifests.schema import ManifestRow, write_manifest
from training.inference import normalize
from search.index import (AudioIndex, classify, items_from_folder, items_from_manifest, label_prompts,
                            top_k)


def _index(n=50, dim=8, seed=0):
    rng = np.random.default_rng(seed)
    audio = rng.standard_normal((n, dim)).astype(np.float32)
    items = [{"id": f"x:{i}", "path": f"/a/{i}.flac", "captions": [f"cap {i} a", f"cap {i} b"]} for i in range(n)]
    # each caption sits close to its own audio
    captions = np.repeat(audio, 2, axis=0) + 0.05 * rng.standard_normal((2 * n, dim)).astype(np.float32)
    return AudioIndex.from_embeddings(audio, items, captions), audio


def test_top_k_matches_full_sort_and_breaks_ties_by_index():
    rng = np.random.default_rng(1)
    s = rng.standard_normal(1000)
    assert list(top_k(s, 7)) == list(np.argsort(-s, kind="stable")[:7])
    assert list(top_k(np.array([0.5, 0.9, 0.5, 0.9]), 3)) == [1, 3, 0]
    assert list(top_k(s[:3], 10)) == list(np.argsort(-s[:3], kind="stable"))


def test_normalize_rejects_zero_rows():
    assert np.allclose(np.linalg.norm(normalize(np.array([[3.0, 4.0]])), axis=1), 1)
    with pytest.raises(ValueError, match="all zeros"):
        normalize(np.zeros((2, 3)))


def test_queries_find_their_own_items_and_scores_are_cosines():
    index, audio = _index()
    q = audio[17] * 3.0  # scale does not matter
    hits = index.search_audio(q, k=5)
    assert hits[0].id == "x:17" and hits[0].rank == 1
    assert hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert [h.score for h in hits] == sorted([h.score for h in hits], reverse=True)
    expected = np.argsort(-(normalize(audio) @ normalize(q)[0]), kind="stable")[:5]
    assert [h.id for h in hits] == [f"x:{i}" for i in expected]

    caps = index.search_captions(audio[4], k=2)
    assert {h.text for h in caps} == {"cap 4 a", "cap 4 b"} and all(h.id == "x:4" for h in caps)

    similar = index.similar_audio(index.embedding_of("x:9"), k=3, exclude_id="x:9")
    assert "x:9" not in [h.id for h in similar] and len(similar) == 3


def test_save_load_round_trip(tmp_path):
    index, audio = _index()
    index.meta["checkpoint"] = "/ckpt.pt"
    index.save(tmp_path / "ix")
    assert np.load(tmp_path / "ix" / "audio.npy").dtype == np.float32
    for mmap in (False, True):
        back = AudioIndex.load(tmp_path / "ix", mmap=mmap)
        assert list(back.items) == index.items and back.meta["checkpoint"] == "/ckpt.pt"
        assert back.items[-1] == index.items[-1] and back.position("x:7") == 7
        assert np.array_equal(np.asarray(back.audio), index.audio)
        assert [h.id for h in back.search_captions(audio[3], 4)] == [h.id for h in index.search_captions(audio[3], 4)]
    meta = json.loads((tmp_path / "ix" / "index.json").read_text())
    assert meta["n_captions"] == 100 and meta["format"] == 2 and "caption_refs" not in meta


def test_a_loaded_index_reads_only_what_a_query_needs(tmp_path):
    """audio.npy memory-mapped; captions.npy untouched by text and similar queries; items read by row."""
    index, audio = _index()
    index.save(tmp_path / "ix")
    back = AudioIndex.load(tmp_path / "ix")
    assert isinstance(back.audio, np.memmap)
    (tmp_path / "ix" / "captions.npy").unlink()  # a text query never opens it
    assert back.search_audio(audio[5], 3)[0].id == "x:5"
    assert back.similar_audio(audio[5], 2, exclude_id="x:5")[0].id != "x:5" and back.n_captions == 100
    with pytest.raises(ValueError, match=r"captions\.npy is missing: rebuild the index"):
        back.search_captions(audio[5], 2)


def test_an_index_of_the_first_format_still_loads(tmp_path):
    """Format 1: items.json, caption_refs inside index.json, no "format" key."""
    index, audio = _index(n=6)
    folder = tmp_path / "old"
    folder.mkdir()
    np.save(folder / "audio.npy", index.audio)
    np.save(folder / "captions.npy", index.captions)
    (folder / "items.json").write_text(json.dumps(index.items))
    (folder / "index.json").write_text(json.dumps({"dim": 8, "n_items": 6, "n_captions": 12,
                                                   "caption_refs": index.caption_refs.tolist()}))
    back = AudioIndex.load(folder)
    assert back.search_audio(audio[2], 1)[0].id == "x:2" and back.search_captions(audio[4], 1)[0].text.startswith("cap 4")
    (folder / "index.json").write_text(json.dumps({"format": 9, "dim": 8, "n_items": 6}))
    with pytest.raises(ValueError, match="format 9, newer"):
        AudioIndex.load(folder)


@pytest.mark.parametrize("damage", ["no audio.npy", "no items.sqlite", "truncated audio.npy", "text items.sqlite",
                                    "short audio.npy"])
def test_a_damaged_index_names_the_file_and_says_to_rebuild(tmp_path, damage):
    index, _ = _index(n=20)
    folder = index.save(tmp_path / "ix")
    name = damage.split()[-1]
    if damage.startswith("no "):
        (folder / name).unlink()
    elif damage.startswith("truncated"):
        data = (folder / name).read_bytes()
        (folder / name).write_bytes(data[: len(data) // 2])
    elif damage.startswith("text"):
        (folder / name).write_text("not a database at all, " * 100)
    else:  # an array of other rows than index.json counts
        np.save(folder / name, np.ones((3, 8), dtype=np.float32))
    with pytest.raises(ValueError, match=rf"{name}.*rebuild the index with `wt5k-search index`"):
        AudioIndex.load(folder)


def test_saving_is_atomic_and_never_writes_through_planted_links(tmp_path, monkeypatch):
    """A crash while writing leaves the old index whole; symbolic links planted in --out are replaced, never
    followed; --out that is a link, or a folder of other files, is refused."""
    import search.storage as storage

    old, _ = _index(n=10, seed=1)
    new, _ = _index(n=12, seed=2)
    out = tmp_path / "ix"
    old.save(out)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (out / "items.sqlite").unlink()
    (out / "items.sqlite").symlink_to(victim)  # planted: the next save must not write through it
    (out / "index.json").unlink()
    (out / "index.json").symlink_to(tmp_path / "planted.json")
    (tmp_path / "planted.json").write_text(json.dumps({"format": 2}))
    new.save(out)
    assert victim.read_text() == "precious" and json.loads((tmp_path / "planted.json").read_text()) == {"format": 2}
    assert not (out / "items.sqlite").is_symlink() and len(AudioIndex.load(out)) == 12

    def crash(items_path, items):  # the machine stops half-way through writing the new index
        raise KeyboardInterrupt

    monkeypatch.setattr(storage.ItemStore, "write", staticmethod(crash))
    with pytest.raises(KeyboardInterrupt):
        old.save(out)
    assert len(AudioIndex.load(out)) == 12  # the previous index, whole
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".ix.")] == []  # no temporary left
    monkeypatch.undo()

    (tmp_path / "link").symlink_to(out)
    with pytest.raises(ValueError, match="symbolic link"):
        new.save(tmp_path / "link")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    with pytest.raises(ValueError, match="not a search index"):
        new.save(mine)
    assert (mine / "notes.txt").read_text() == "keep"


def test_a_flac_claiming_2_36_frames_is_skipped_not_allocated(tmp_path):
    """A small FLAC whose STREAMINFO claims 2^36 - 1 frames is left out with its reason; the others are indexed."""
    import soundfile as sf

    folder = tmp_path / "sounds"
    folder.mkdir()
    tone = 0.5 * np.sin(2 * np.pi * 440 * np.arange(8000) / 8000).astype(np.float32)
    sf.write(folder / "good.flac", tone, 8000)
    data = bytearray((folder / "good.flac").read_bytes())
    assert data[:4] == b"fLaC"
    # STREAMINFO: bytes 18..25 hold rate (20 bits), channels-1 (3), bits-1 (5), total frames (36)
    packed = int.from_bytes(data[18:26], "big") | (2**36 - 1)
    data[18:26] = packed.to_bytes(8, "big")
    (folder / "huge.flac").write_bytes(bytes(data))
    assert sf.info(str(folder / "huge.flac")).frames == 2**36 - 1
    index = AudioIndex.build(_ReadingEmbedder(), items_from_folder(folder))
    assert [it["id"] for it in index.items] == ["good.flac"]
    (reason,) = [s["reason"] for s in index.meta["skipped"]]
    assert "huge.flac" in reason and "claims 68,719,476,735 frames" in reason


def test_a_manifest_audio_path_out_of_its_folder_is_refused_unless_allowed(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "secret.wav").write_bytes(b"")
    (tmp_path / "m").mkdir()
    rows = [ManifestRow(id="a:1", source="a", audio_path="audio/1.flac", caption="in"),
            ManifestRow(id="a:2", source="a", audio_path="../elsewhere/secret.wav", caption="out")]
    manifest = write_manifest(tmp_path / "m" / "m.csv", rows)
    with pytest.raises(ValueError, match=r"1 row\(s\) name audio outside.*'a:2'.*--allow-outside"):
        items_from_manifest(manifest)
    items = items_from_manifest(manifest, allow_outside=[elsewhere])
    assert [it["path"] for it in items][1] == str((elsewhere / "secret.wav").resolve())
    (tmp_path / "m" / "link.wav").symlink_to(elsewhere / "secret.wav")  # a link out of the folder: refused too
    write_manifest(manifest, [ManifestRow(id="a:3", source="a", audio_path="link.wav", caption="l")])
    with pytest.raises(ValueError, match="outside"):
        items_from_manifest(manifest)


def test_folder_index_has_no_captions_and_says_so(tmp_path):
    index = AudioIndex.from_embeddings(np.eye(3), [{"id": str(i), "path": str(i)} for i in range(3)])
    with pytest.raises(ValueError, match="no captions"):
        index.search_captions(np.ones(3), 2)
    with pytest.raises(FileNotFoundError, match="not a search index"):
        AudioIndex.load(tmp_path)


def test_mismatched_inputs_are_errors():
    with pytest.raises(ValueError, match="2 audio embeddings for 3 items"):
        AudioIndex(np.ones((2, 3)), [{}, {}, {}])
    with pytest.raises(KeyError, match="nope"):
        _index()[0].embedding_of("nope")


def test_zero_shot_classify_and_prompts():
    labels = np.eye(3, dtype=np.float32)
    audio = np.array([[0.9, 0.1, 0.0], [0.0, 0.2, 1.0]], dtype=np.float32)
    p = classify(audio, labels, logit_scale=10.0)
    assert p.shape == (2, 3) and np.allclose(p.sum(axis=1), 1)
    assert list(p.argmax(axis=1)) == [0, 2]
    assert classify(audio, labels, 50.0)[0, 0] > p[0, 0]  # sharper with a larger scale
    assert label_prompts(["dog", " rain "], "the sound of {}") == ["the sound of dog", "the sound of rain"]
    with pytest.raises(ValueError, match="must contain"):
        label_prompts(["dog"], "no slot")
    with pytest.raises(ValueError, match="non-empty labels"):
        label_prompts(["dog", ""])


def test_items_from_manifest_groups_captions_and_from_folder(tmp_path):
    rows = [ManifestRow(id="a:1", source="a", audio_path="audio/1.flac", caption="first"),
            ManifestRow(id="a:1", source="a", audio_path="audio/1.flac", caption="second"),
            ManifestRow(id="a:2", source="a", audio_path="audio/2.flac", caption="other")]
    write_manifest(tmp_path / "m.csv", rows)
    items = items_from_manifest(tmp_path / "m.csv")
    assert [(it["id"], it["captions"]) for it in items] == [("a:1", ["first", "second"]), ("a:2", ["other"])]
    assert items[0]["path"] == str((tmp_path / "audio" / "1.flac").resolve())

    (tmp_path / "f" / "sub").mkdir(parents=True)
    for name in ("b.wav", "sub/a.FLAC", "notes.txt"):
        (tmp_path / "f" / name).write_bytes(b"")
    assert [it["id"] for it in items_from_folder(tmp_path / "f")] == ["b.wav", "sub/a.FLAC"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no audio files"):
        items_from_folder(tmp_path / "empty")
    with pytest.raises(NotADirectoryError):
        items_from_folder(tmp_path / "missing")


class _ReadingEmbedder:
    """Reads each file as the real Embedder does (training.data.read_audio) and embeds it by two statistics."""

    def embed_audio_files(self, paths):
        from training.data import read_audio

        clips = [read_audio(str(p), 8000) for p in paths]
        return np.array([[np.abs(x).mean() + 1e-3, float(len(x))] for x in clips], dtype=np.float32)

    def embed_texts(self, texts):
        return np.ones((len(texts), 2), dtype=np.float32)


def test_a_folder_with_unreadable_and_other_files_is_indexed_and_every_file_accounted_for(tmp_path):
    import soundfile as sf
    from collections import Counter

    folder = tmp_path / "sounds"
    folder.mkdir()
    tone = 0.5 * np.sin(2 * np.pi * 440 * np.arange(8000) / 8000).astype(np.float32)
    sf.write(folder / "beep.wav", tone, 8000)
    sf.write(folder / "bell.oga", tone[:4000], 8000, format="OGG", subtype="VORBIS")  # as sound themes ship them
    (folder / "page.mp3").write_bytes(b"<!DOCTYPE html><html><body>404</body></html>")
    (folder / "empty.flac").write_bytes(b"")
    (folder / "cover.png").write_bytes(b"\x89PNG\r\n")
    (folder / "README").write_text("x")
    ignored = Counter()
    items = items_from_folder(folder, ignored)
    assert [it["id"] for it in items] == ["beep.wav", "bell.oga", "empty.flac", "page.mp3"]
    assert ignored == {".png": 1, "(none)": 1}
    index = AudioIndex.build(_ReadingEmbedder(), items, {"source": str(folder)}, group=3)
    assert [it["id"] for it in index.items] == ["beep.wav", "bell.oga"] and len(index.audio) == 2
    skipped = {s["id"]: s["reason"] for s in index.meta["skipped"]}
    assert set(skipped) == {"empty.flac", "page.mp3"}
    assert "cannot decode" in skipped["page.mp3"] and "page.mp3" in skipped["page.mp3"]
    index.save(tmp_path / "idx")
    assert AudioIndex.load(tmp_path / "idx").meta["skipped"] == index.meta["skipped"]
    with pytest.raises(ValueError, match="none of the 2 audio files"):
        AudioIndex.build(_ReadingEmbedder(), [it for it in items if it["id"] in skipped])


def test_kill_9_while_saving_leaves_the_old_index_whole(tmp_path):
    """A real interruption: `kill -9` of a process half-way through writing a new index over an old one."""
    import signal
    import subprocess
    import sys
    import time

    old, _ = _index(n=10, seed=1)
    out = old.save(tmp_path / "ix")
    script = ("import numpy as np, sys\nfrom search.index import AudioIndex\nn = 400_000\n"
              "items = [{'id': f'i{j}', 'path': f'/a/{j}.wav', 'captions': []} for j in range(n)]\n"
              "AudioIndex(np.ones((n, 16), np.float32), items).save(sys.argv[1])\n")
    proc = subprocess.Popen([sys.executable, "-c", script, str(out)])
    deadline = time.monotonic() + 60
    try:
        while not list(tmp_path.glob(".ix.new-*/items.sqlite")):  # arrays written, items being written
            assert proc.poll() is None and time.monotonic() < deadline, "the save ended before it was killed"
            time.sleep(0.01)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    back = AudioIndex.load(out)
    assert len(back) == 10 and list(back.items)[3]["id"] == "x:3"  # the old index, whole
    assert list(tmp_path.glob(".ix.new-*"))  # the killed save's folder, beside it
    _index(n=12)[0].save(out)
    assert len(AudioIndex.load(out)) == 12 and not list(tmp_path.glob(".ix.*"))  # the next save clears it
