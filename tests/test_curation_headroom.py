"""The headroom policy of curation.audio: full-scale material at many rates, in every input format, mono and
stereo, held in memory or streamed, never comes out clipped by default (one gain per file, recorded); with
on_overshoot="clip" the levels are untouched and the clipped samples are counted. The expected output is
computed here independently: soundfile decode, channel mean, one-shot soxr resampling."""
import numpy as np
import pytest
import soundfile as sf
import soxr

from curation.audio import AudioOptions, process_audio
from curation.samples import headroom_gain, quantise
from tests.synth import write

SR = 44100
RATES = (8000, 11025, 22050, 32000, 48000, 96000)
FORMATS = {"WAV": ("wav", "PCM_16"), "FLAC": ("flac", "PCM_16"), "OGG": ("ogg", "VORBIS"), "MP3": ("mp3", "MPEG_LAYER_III")}
STREAMED = dict(block_frames=1024, hold_frames=2048)  # a short file takes the long files' two-pass path


def _signal(kind: str, sr: int, channels: int, seconds: float) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    rng = np.random.default_rng(sr + channels)
    cols = []
    for c in range(channels):
        f = sr / 11 * (1 + c / 5)  # well inside the band at every rate
        if kind == "square":
            x = np.sign(np.sin(2 * np.pi * f * t))
        elif kind == "clipped":  # a recording driven 10 dB into its converter's limits
            x = np.clip(3.2 * np.sin(2 * np.pi * f / 3 * t), -1, 1)
        else:  # full-scale noise
            x = rng.uniform(-1, 1, len(t))
        cols.append(x)
    return np.stack(cols, axis=1) * (32767 / 32768)


def _reference(src) -> np.ndarray:
    x, sr = sf.read(str(src), dtype="float32", always_2d=True)
    return soxr.resample(x.mean(axis=1, dtype=np.float32), sr, SR, quality="HQ").astype(np.float64)


# MPEG audio has no 96 kHz rate
@pytest.mark.parametrize("sr,fmt", [(sr, fmt) for sr in RATES for fmt in FORMATS if (sr, fmt) != (96000, "MP3")])
def test_full_scale_material_is_never_clipped_by_default(tmp_path, sr, fmt):
    ext, subtype = FORMATS[fmt]
    for kind in ("square", "clipped", "noise"):
        for channels in (1, 2):
            src = write(tmp_path / f"{kind}{channels}.{ext}", _signal(kind, sr, channels, 0.25), sr, subtype, fmt)
            ref = _reference(src)
            for streamed in (False, True):
                opts = AudioOptions(**(STREAMED if streamed else {}))
                dst = tmp_path / f"out_{kind}{channels}{streamed}.flac"
                res = process_audio(src, dst, opts)
                case = (kind, channels, streamed)
                assert res.status == "ok", (case, res.reason, res.detail)
                assert res.clipped_samples == 0, case
                assert res.out_peak == pytest.approx(np.abs(ref).max(), rel=1e-3), case
                # the material overshoots after resampling, so the whole file is scaled by one gain ...
                assert res.out_peak > 1.0 and res.gain == pytest.approx(headroom_gain(res.out_peak, "PCM_16")), case
                y = sf.read(str(dst), dtype="int16")[0].astype(np.float64)
                # ... that brings its peak to the top integer step, and every sample follows the unclipped signal
                assert np.abs(y).max() >= 32766, case
                n = min(len(y), len(ref))
                assert np.abs(y[:n] - ref[:n] * res.gain * 32768).max() <= 3, case


@pytest.mark.parametrize("fmt", ["WAV", "MP3"])
@pytest.mark.parametrize("streamed", [False, True])
def test_clip_policy_keeps_levels_and_counts_clipped_samples(tmp_path, fmt, streamed):
    ext, subtype = FORMATS[fmt]
    src = write(tmp_path / f"in.{ext}", _signal("square", 22050, 2, 0.25), 22050, subtype, fmt)
    opts = AudioOptions(on_overshoot="clip", **(STREAMED if streamed else {}))
    res = process_audio(src, tmp_path / "o.flac", opts)
    ref = _reference(src) * 32768
    want = int(np.count_nonzero(np.rint(ref) > 32767) + np.count_nonzero(np.rint(ref) < -32768))
    assert res.status == "ok" and res.gain == 1.0 and want > 100
    assert abs(res.clipped_samples - want) <= want // 100  # the streaming resampler may differ by a rounding step
    y = sf.read(str(tmp_path / "o.flac"), dtype="int16")[0].astype(np.float64)
    n = min(len(y), len(ref))
    assert np.abs(y[:n] - np.clip(ref[:n], -32768, 32767)).max() <= 3  # levels untouched


def test_material_that_fits_is_left_untouched(tmp_path):
    x = _signal("noise", 44100, 1, 0.3)  # full scale but already at the output rate: nothing overshoots
    src = write(tmp_path / "in.wav", x, 44100, "PCM_16")
    for opts in (AudioOptions(), AudioOptions(**STREAMED)):  # held, and written as it streams
        res = process_audio(src, tmp_path / "o.flac", opts)
        assert (res.gain, res.clipped_samples) == (1.0, 0)
        assert np.array_equal(sf.read(str(tmp_path / "o.flac"), dtype="int16")[0], sf.read(str(src), dtype="int16")[0])


@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24"])
def test_gain_puts_the_peak_on_the_top_step_and_never_above(subtype):
    bits = 16 if subtype == "PCM_16" else 24
    top = 2 ** (bits - 1) - 1
    rng = np.random.default_rng(3)
    for peak in (1.0, 1.0000001, 1.3, 1.999, 7.5):
        y = (rng.uniform(-1, 1, 10000) * peak).astype(np.float32)
        y[17] = np.float32(peak)
        p = float(np.abs(y).max())
        clipped = [0]
        q = quantise(y, subtype, headroom_gain(p, subtype), clipped) >> (8 if bits == 24 else 0)
        # on the top step, or one below it where float32 cannot hold 24 bits exactly; never above
        assert clipped == [0] and top - (bits == 24) <= int(q.max()) <= top and int(q.min()) >= -top


def test_overshoot_found_late_in_a_streamed_file_rewrites_it_at_one_gain(tmp_path):
    """Quiet for a while, then full scale: blocks already written at gain 1 are redone at the file's gain."""
    x = np.concatenate([_signal("noise", 22050, 1, 0.5) * 0.1, _signal("square", 22050, 1, 0.25)])
    src = write(tmp_path / "in.wav", x, 22050, "PCM_16")
    held = process_audio(src, tmp_path / "h.flac")
    streamed = process_audio(src, tmp_path / "s.flac", AudioOptions(**STREAMED))
    assert held.gain < 1 and streamed.gain == held.gain and streamed.clipped_samples == 0
    assert streamed.content_hash == held.content_hash


def test_overshoot_policy_is_checked():
    with pytest.raises(ValueError, match="overshoot"):
        AudioOptions(on_overshoot="limit")


def test_curate_records_the_gain_and_stats_report_it(tmp_path):
    from curation.pipeline import CurateOptions, curate
    from curation.sources import Item
    from curation.stats import headroom, headroom_markdown
    from manifests import read_manifest

    loud = write(tmp_path / "loud.wav", _signal("square", 22050, 1, 0.3), 22050, "PCM_16")
    quiet = write(tmp_path / "quiet.wav", _signal("noise", 22050, 1, 0.3) * 0.25, 22050, "PCM_16")
    items = [Item(id=f"t:{p.stem}", source="t", source_id=p.stem, audio=str(p), title_raw="T", description_raw="D")
             for p in (loud, quiet)]
    for policy in ("attenuate", "clip"):
        out = tmp_path / policy
        rep = curate(out, items=items, options=CurateOptions(audio=AudioOptions(on_overshoot=policy), workers=1,
                                                              progress=False, figures=False))
        rows = {r.id: r for r in read_manifest(rep.manifest)}
        assert rows["t:quiet"].gain_db == 0 and rows["t:quiet"].clipped_samples == 0
        assert rows["t:loud"].peak_dbfs > 0.5  # the resampled square wave overshoots full scale
        h = headroom(list(rows.values()))
        if policy == "attenuate":
            assert rows["t:loud"].gain_db == pytest.approx(-rows["t:loud"].peak_dbfs, abs=0.01)
            assert rows["t:loud"].clipped_samples == 0
            assert (h["n_attenuated"], h["max_attenuation_db"], h["n_clipped"]) == (1, round(-rows["t:loud"].gain_db, 2), 0)
        else:
            assert rows["t:loud"].gain_db == 0 and rows["t:loud"].clipped_samples > 0
            assert (h["n_attenuated"], h["n_clipped"]) == (0, 1)
        assert rep.stats["headroom"] == h
        assert headroom_markdown(h) in (out / "stats.md").read_text()
