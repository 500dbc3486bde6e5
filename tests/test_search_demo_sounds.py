"""The demo's procedural sounds: the audio is what the captions say, the CSV is the published format."""
import json

import numpy as np
import pytest
import soundfile as sf

from manifests.published import parse_tags, published_to_manifest, read_published_csv
from demo.sounds import Event, describe, generate_demo_sounds, make_clips, synthesize_event


def _dominant_hz(x, sr):
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return np.fft.rfftfreq(len(x), 1 / sr)[spec.argmax()]


def test_events_sound_like_their_words():
    rng = np.random.default_rng(0)
    sr = 44100
    low = synthesize_event(Event("tone", "loud", pitch="low"), sr, 1.0, rng)
    high = synthesize_event(Event("tone", "loud", pitch="high"), sr, 1.0, rng)
    assert 180 < _dominant_hz(low, sr) < 260 and 1700 < _dominant_hz(high, sr) < 2300
    quiet = synthesize_event(Event("noise", "quiet"), sr, 1.0, rng)
    loud = synthesize_event(Event("noise", "loud"), sr, 1.0, rng)
    assert 20 * np.log10(np.abs(loud).max() / np.abs(quiet).max()) > 18
    up = synthesize_event(Event("sweep_up", "loud"), sr, 1.0, rng)
    assert _dominant_hz(up[:sr // 4], sr) < _dominant_hz(up[-sr // 4:], sr)
    down = synthesize_event(Event("sweep_down", "loud"), sr, 1.0, rng)
    assert _dominant_hz(down[:sr // 4], sr) > _dominant_hz(down[-sr // 4:], sr)
    slow = synthesize_event(Event("clicks", "loud", tempo="slow"), sr, 2.0, rng)
    fast = synthesize_event(Event("clicks", "loud", tempo="fast"), sr, 2.0, rng)

    def onsets(x):  # groups of loud samples separated by more than 20 ms
        loud_at = np.flatnonzero(np.abs(x) > 0.1)
        return 1 + int(np.sum(np.diff(loud_at) > 0.02 * sr)) if len(loud_at) else 0
    assert onsets(fast) > 2 * onsets(slow) > 0


def test_captions_vary_in_words_but_keep_order_and_attributes():
    rng = np.random.default_rng(3)
    events = [Event("tone", "loud", pitch="high"), Event("noise", "quiet")]
    caps = {describe(events, rng) for _ in range(30)}
    assert len(caps) > 10
    for c in caps:
        assert c[0].isupper() and c.endswith(".")
    with pytest.raises(ValueError):
        describe(events * 2, rng)


def test_generate_writes_published_csv_audio_and_captions(tmp_path):
    csv_path = generate_demo_sounds(tmp_path, n=12, seed=5)
    rows = read_published_csv(csv_path)
    assert len(rows) == 12
    assert {r.source for r in rows} == {"soundbible", "bigsoundbank"}
    ids = [r.id for r in rows]
    assert len(set(ids)) == 12
    for r in rows:
        assert (tmp_path / "audio" / r.fname).is_file()
        info = sf.info(tmp_path / "audio" / r.fname)
        assert 1.0 < info.duration < 4.0 and info.samplerate in (22050, 44100, 48000)
        assert parse_tags(r.tags) and r.title and r.description.strip()
    assert [m.id for m in published_to_manifest(rows)] == ids  # every row is captioned
    sb_titles = [c.title for c in make_clips(200) if c.source == "soundbible"]
    assert len(set(sb_titles)) == len(sb_titles)  # repeated titles are numbered, as on the real site
    captions = json.loads((tmp_path / "captions.json").read_text())
    assert set(captions) == set(ids) and all(len(c["captions"]) >= 3 for c in captions.values())
    # deterministic
    again = generate_demo_sounds(tmp_path / "again", n=12, seed=5)
    assert again.read_text() == csv_path.read_text()
    first = rows[0].fname
    assert np.array_equal(sf.read(tmp_path / "audio" / first)[0], sf.read(tmp_path / "again" / "audio" / first)[0])


def test_clip_count_must_be_positive():
    with pytest.raises(ValueError):
        make_clips(0)
