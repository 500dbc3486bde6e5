"""Training data: caption modes, audio decoding, crops and padding, mixing and sharding."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import soundfile as sf

from manifests import ManifestRow, write_manifest
from training.config import ManifestSpec
from manifests import caption_for
from training.data import (MixingBatchSampler, PairDataset, allocate, collate_pairs, crop_or_pad,
                           read_audio, read_pairs)
from tests.training_fixtures import make_manifest


def _row(**kw) -> ManifestRow:
    base = dict(id="s:1", source="s", audio_path="a.wav", caption="the caption column")
    return ManifestRow(**{**base, **kw})


def test_caption_modes():
    r = _row(title="Dog Bark", description="A dog barks twice.")
    assert caption_for(r, "title_description") == "Dog Bark. A dog barks twice."
    assert caption_for(r, "description") == "A dog barks twice."
    assert caption_for(r, "manifest") == "the caption column"
    # AudioCaps/Clotho-style rows (caption only) keep their caption in every mode
    assert caption_for(_row(), "description") == "the caption column"


def test_read_pairs_split_filter_and_errors(tmp_path):
    m = make_manifest(tmp_path, 3, split="train")
    assert [p.audio_id for p in read_pairs(ManifestSpec(str(m)), "title_description")] == ["test:0", "test:1", "test:2"]
    assert read_pairs(ManifestSpec(str(m)), "description")[0].caption == "The rain sound number 0"
    with pytest.raises(ValueError, match="no rows in split 'test'"):
        read_pairs(ManifestSpec(str(m), split="test"), "title_description")
    (tmp_path / "audio" / "clip1.wav").unlink()
    with pytest.raises(ValueError, match=r"1 audio file\(s\) not found.*clip1.wav"):
        read_pairs(ManifestSpec(str(m)), "title_description")


def test_read_audio_mono_resampled_and_partial(tmp_path):
    sr = 22050
    stereo = np.stack([np.full(sr, 0.5), np.full(sr, -0.1)], axis=1).astype(np.float32)
    sf.write(tmp_path / "s.flac", stereo, sr)
    x = read_audio(str(tmp_path / "s.flac"))
    assert x.dtype == np.float32 and x.ndim == 1
    assert abs(len(x) - 44100) <= 2
    assert np.allclose(x[1000:-1000], 0.2, atol=1e-3)  # channel mean
    # partial read of a long file: about the requested length, from a random place
    sf.write(tmp_path / "long.wav", np.arange(44100 * 4, dtype=np.float32) / 1e6, 44100)
    part = read_audio(str(tmp_path / "long.wav"), length=1000, rng=np.random.default_rng(0))
    assert 1000 <= len(part) <= 1100
    sf.write(tmp_path / "empty.wav", np.zeros(0, dtype=np.float32), 44100)
    with pytest.raises(ValueError, match="empty"):
        read_audio(str(tmp_path / "empty.wav"))
    (tmp_path / "bad.wav").write_bytes(b"not audio")
    with pytest.raises(ValueError, match="cannot read audio"):
        read_audio(str(tmp_path / "bad.wav"))


def test_crop_and_repeat_pad():
    x = np.arange(10, dtype=np.float32)
    assert crop_or_pad(x, 4).tolist() == [0, 1, 2, 3]  # no rng: the first window
    crops = {tuple(crop_or_pad(x, 4, np.random.default_rng(s)).astype(int).tolist()) for s in range(30)}
    assert len(crops) > 3 and all(c == tuple(range(c[0], c[0] + 4)) for c in crops)
    assert crop_or_pad(x[:3], 8).tolist() == [0, 1, 2, 0, 1, 2, 0, 1]  # repeat-padding


def test_dataset_items_deterministic_by_seed_and_collate(tmp_path):
    m = make_manifest(tmp_path, 3, captions_per_audio=2, seconds=1.0)
    ds = PairDataset([ManifestSpec(str(m))], "title_description", crop_samples=4410)
    assert len(ds) == 6
    a, b = ds[(0, (1, 2, 3))], ds[(0, (1, 2, 3))]
    assert np.array_equal(a["waveform"], b["waveform"]) and a["waveform"].shape == (4410,)
    assert not np.array_equal(a["waveform"], ds[(0, (1, 2, 4))]["waveform"])
    # the paper's one-hot loss ("pair", the default): every pair is its own and only positive
    assert ds.audio_keys.tolist() == ds.caption_keys.tolist() == [0, 1, 2, 3, 4, 5]
    # multi-positive: two captions of one audio share the audio key, not the caption key
    multi = PairDataset([ManifestSpec(str(m))], "title_description", crop_samples=4410, positives="audio_or_caption")
    assert multi.audio_keys.tolist() == [0, 0, 1, 1, 2, 2]
    assert len(set(multi.caption_keys.tolist())) == 6
    batch = collate_pairs([multi[(i, (0, 0, i))] for i in range(4)])
    assert batch["waveform"].shape == (4, 4410) and batch["audio_keys"].tolist() == [0, 0, 1, 1]
    assert batch["texts"][0] == "Rain 0. The rain sound number 0" and batch["audio_ids"][2] == "test:1"
    # the cache gives the same samples as reading the file each time
    cached = PairDataset([ManifestSpec(str(m))], "title_description", crop_samples=4410, cache_mb=16)
    assert np.array_equal(cached[(3, (5,))]["waveform"], cached[(3, (5,))]["waveform"])


def test_same_caption_text_shares_a_key(tmp_path):
    (tmp_path / "a.wav").write_bytes(b"")
    rows = [_row(id=f"s:{i}", caption=c) for i, c in enumerate(["Rain.", "rain.  ", "Wind"])]
    m = write_manifest(tmp_path / "m.csv", rows)
    ds = PairDataset([ManifestSpec(str(m))], "manifest", crop_samples=10, positives="audio_or_caption")
    assert ds.caption_keys.tolist() == [0, 0, 1]


def test_allocate_largest_remainder():
    assert allocate(10, [1, 1, 1]) == [4, 3, 3]
    assert allocate(7, [3, 1]) == [5, 2]
    assert sum(allocate(1001, [0.2, 0.5, 0.3])) == 1001


def test_mixing_proportions_and_no_repeats_within_a_pass():
    sampler = MixingBatchSampler([10, 100], batch_size=20, weights=[0.5, 0.5], samples_per_epoch=100, seed=1)
    idx = sampler.epoch_indices(0)
    groups = Counter(int(i >= 10) for i in idx)
    assert groups == {0: 50, 1: 50}  # the small manifest is over-sampled: 5 passes over its 10 rows
    assert Counter(i for i in idx if i < 10) == {i: 5 for i in range(10)}
    big = [i for i in idx if i >= 10]
    assert len(set(big)) == 50  # no row of the big one twice in an epoch
    assert not np.array_equal(idx, sampler.epoch_indices(1))
    assert np.array_equal(idx, sampler.epoch_indices(0))
    natural = MixingBatchSampler([10, 30], batch_size=8, seed=1).epoch_indices(0)
    assert sorted(natural.tolist()) == list(range(40))  # no weights: every row once


def test_sharding_reassembles_the_one_process_batches():
    kw = dict(group_sizes=[7, 13], batch_size=6, weights=[1, 2], samples_per_epoch=40, seed=3)
    one = MixingBatchSampler(**kw)
    ranks = [MixingBatchSampler(**kw, rank=r, world_size=3) for r in range(3)]
    for s in [one, *ranks]:
        s.set_epoch(2)
    single = list(one)
    sharded = list(zip(*ranks))
    assert len(single) == len(sharded) == 40 // 6
    for whole, parts in zip(single, sharded):
        assert whole == [item for part in parts for item in part]  # same items, same seeds, rank order
    # resuming skips batches without changing the rest
    one.set_epoch(2, start_batch=4)
    assert list(one) == single[4:] and len(one) == len(single) - 4
    with pytest.raises(ValueError, match="not divisible"):
        MixingBatchSampler([10], batch_size=5, world_size=2)
    with pytest.raises(ValueError, match="no full global batch"):
        MixingBatchSampler([3], batch_size=4)


def test_spec_selects_splits_and_required_text(tmp_path):
    """The paper's WavText5K training set: every split, only sounds with both a title and a description;
    Clotho's development + validation: the splits train and val of its manifest."""
    (tmp_path / "a.wav").write_bytes(b"RIFF")
    rows = [_row(id="s:both-train", title="T", description="D", split="train"),
            _row(id="s:both-test", title="T", description="D", split="test"),
            _row(id="s:title-only", title="T", split="train"),
            _row(id="s:desc-only", description="D", split="val"),
            _row(id="s:none", caption="", split="")]  # published metadata kept, no split, no caption
    m = write_manifest(tmp_path / "m.csv", rows)
    ids = lambda spec: [p.audio_id for p in read_pairs(spec, "title_description")]  # noqa: E731
    assert ids(ManifestSpec(str(m), require=["title", "description"])) == ["s:both-train", "s:both-test"]
    assert ids(ManifestSpec(str(m), split=["train", "val"])) == ["s:both-train", "s:title-only", "s:desc-only"]
    assert ids(ManifestSpec(str(m), split="train", require=["description"])) == ["s:both-train"]
    with pytest.raises(ValueError, match="no rows in split 'val' with title and description"):
        read_pairs(ManifestSpec(str(m), split="val", require=["title", "description"]), "description")
    with pytest.raises(ValueError, match="split must be one of"):
        ManifestSpec(str(m), split=["train", "dev"])
    with pytest.raises(ValueError, match="require takes"):
        ManifestSpec(str(m), require=["tags"])
    spec = ManifestSpec.from_arg(f"{m}:train+val")
    assert spec.splits == ("train", "val") and spec.label == "m:train+val"


def test_read_audio_names_the_file_in_decoder_notes(tmp_path, capfd):
    """libmpg123's notes on a damaged MP3 read for training, evaluation or search reach stderr under the file's
    name, never bare (as curation's conversion and overlap audit do)."""
    from tests.synth import damaged_mp3
    from training.data import read_audio
    src = damaged_mp3(tmp_path)
    assert len(read_audio(str(src), 32000)) > 32000
    err = capfd.readouterr().err
    assert "Note:" in err or "Warning:" in err, err
    assert all(line.startswith(f"{src}: ") for line in err.splitlines()), err
