"""curation.audio: every rejection reason, and valid files of many rates, widths, channel counts and containers
resampled to 44.1 kHz with rate, length and content (frequency, level) kept."""
import numpy as np
import pytest
import soundfile as sf

from curation.audio import REASONS, AudioOptions, process_audio
from curation.mp3_frames import mp3_declares_length, mp3_samples
from curation.samples import quantise
from tests.synth import damaged_mp3, make_broken_files, sine, write

SR = 44100


@pytest.fixture(scope="module")
def broken(tmp_path_factory):
    d = tmp_path_factory.mktemp("broken")
    return d, make_broken_files(d)


def test_every_reason_is_generated(broken):
    _, expected = broken
    # every reason a real file can have (missing_file is tested separately)
    assert set(expected.values()) == set(REASONS) - {"missing_file"}


@pytest.mark.parametrize("name", [
    "empty.wav", "header_only.wav", "truncated.wav", "truncated.flac", "truncated.mp3", "garbage.wav", "garbage.mp3",
    "garbage.flac", "garbage.ogg", "html_page.mp3", "zeros.wav", "zeros.flac", "nan.wav", "inf.wav", "short.wav",
    "one_hz.wav"])
def test_broken_file_is_rejected_with_its_reason(broken, tmp_path, name):
    d, expected = broken
    dst = tmp_path / "out.flac"
    res = process_audio(d / name, dst)
    assert res.status == "rejected"
    assert res.reason == expected[name], res.detail
    assert res.detail  # every rejection says why
    assert not dst.exists() and not list(tmp_path.iterdir())  # nothing left behind, not even a partial file


def test_missing_file(tmp_path):
    res = process_audio(tmp_path / "nope.wav", tmp_path / "o.flac")
    assert (res.status, res.reason) == ("rejected", "missing_file")


def test_min_duration_and_silence_threshold_are_configurable(tmp_path):
    src = write(tmp_path / "quiet.wav", sine(SR, 0.3, amp=10 ** (-70 / 20)), SR, "PCM_24")
    assert process_audio(src, tmp_path / "a.flac").status == "ok"
    assert process_audio(src, tmp_path / "b.flac", AudioOptions(min_duration_s=0.5)).reason == "too_short"
    assert process_audio(src, tmp_path / "c.flac", AudioOptions(silence_dbfs=-60)).reason == "silent"


def _dominant_freq(x: np.ndarray, sr: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return np.argmax(spec) * sr / len(x)


def _rms_db(x: np.ndarray) -> float:
    return 20 * np.log10(np.sqrt(np.mean(np.square(x))))


# (rate, subtype, channels, container): 8 to 192 kHz, 8 to 32-bit int and float, 1 to 8 channels
VALID = [
    (8000, "PCM_U8", 1, "WAV"), (11025, "PCM_16", 2, "WAV"), (16000, "PCM_24", 3, "WAV"),
    (22050, "PCM_32", 4, "WAV"), (32000, "FLOAT", 5, "WAV"), (44100, "DOUBLE", 6, "WAV"),
    (48000, "PCM_16", 8, "WAV"), (96000, "PCM_24", 2, "FLAC"), (192000, "PCM_24", 1, "FLAC"),
    (88200, "PCM_S8", 7, "FLAC"), (48000, "PCM_16", 2, "AIFF"), (44100, "VORBIS", 2, "OGG"),
    (48000, "MPEG_LAYER_III", 1, "MP3"), (22050, "MPEG_LAYER_III", 2, "MP3"),
]


@pytest.mark.parametrize("sr,subtype,channels,fmt", VALID)
def test_valid_file_resampled_to_44k_mono(tmp_path, sr, subtype, channels, fmt):
    seconds, freq, amp = 1.0, 1000.0, 0.5
    # all channels carry the same tone so that the mono downmix keeps its level
    x = np.repeat(sine(sr, seconds, freq, amp), channels, axis=1)
    src = write(tmp_path / f"in.{fmt.lower()}", x, sr, subtype, fmt)
    dst = tmp_path / "audio" / "out.flac"
    res = process_audio(src, dst)
    assert res.status == "ok", (res.reason, res.detail)
    y, out_sr = sf.read(dst, dtype="float64")
    info = sf.info(str(dst))
    assert (out_sr, info.channels, info.format, info.subtype) == (SR, 1, "FLAC", "PCM_16")
    assert (res.sample_rate, res.channels, res.orig_sample_rate, res.orig_channels) == (SR, 1, sr, channels)
    assert res.frames == len(y) and res.duration_s == pytest.approx(len(y) / SR)
    # MP3 adds encoder delay/padding; everything else keeps its length to within a couple of samples
    tol = 3000 if fmt == "MP3" else 2
    assert abs(len(y) - seconds * SR) <= tol
    mid = y[len(y) // 4: 3 * len(y) // 4]
    assert _dominant_freq(mid, SR) == pytest.approx(freq, abs=5)
    level_tol = 1.0 if subtype in ("PCM_U8", "PCM_S8", "MPEG_LAYER_III", "VORBIS") else 0.05
    assert _rms_db(mid) == pytest.approx(_rms_db(amp * np.sin(np.linspace(0, 200 * np.pi, 10000))), abs=level_tol)
    assert res.sha256 and len(res.content_hash) == 64


def test_keep_channels_keeps_each_channel(tmp_path):
    x = sine(48000, 1.0, freq=800, amp=0.4, channels=3)  # 800, 1000, 1200 Hz
    src = write(tmp_path / "in.wav", x, 48000, "PCM_24")
    res = process_audio(src, tmp_path / "o.wav", AudioOptions(channels="keep", out_format="wav"))
    y, sr = sf.read(tmp_path / "o.wav")
    assert res.status == "ok" and sr == SR and y.shape[1] == 3
    assert sf.info(str(tmp_path / "o.wav")).subtype == "PCM_24"
    for c, f in enumerate((800, 1000, 1200)):
        assert _dominant_freq(y[:, c], SR) == pytest.approx(f, abs=3)


def test_mono_downmix_averages_channels(tmp_path):
    left = sine(SR, 0.5, 440, 0.6)
    x = np.concatenate([left, -left], axis=1)  # opposite phase: the average is silence
    src = write(tmp_path / "in.wav", x, SR, "PCM_16")
    assert process_audio(src, tmp_path / "o.flac").reason == "silent"


def test_streaming_blocks_equal_one_block(tmp_path):
    """Small blocks exercise the streaming path (long files): the result equals a single-block conversion."""
    src = write(tmp_path / "in.flac", sine(48000, 2.0, 700, 0.5, channels=2, noise=0.01), 48000, "PCM_24")
    a = process_audio(src, tmp_path / "a.flac", AudioOptions(block_frames=1 << 20))
    b = process_audio(src, tmp_path / "b.flac", AudioOptions(block_frames=4096))
    ya, _ = sf.read(tmp_path / "a.flac")
    yb, _ = sf.read(tmp_path / "b.flac")
    assert a.content_hash == b.content_hash and np.array_equal(ya, yb)  # soxr's output does not depend on chunking


def test_24_bit_flac_option(tmp_path):
    src = write(tmp_path / "in.wav", sine(48000, 0.5, 1000, 0.5), 48000, "PCM_24")
    assert process_audio(src, tmp_path / "o.flac", AudioOptions(bit_depth=24)).status == "ok"
    assert sf.info(str(tmp_path / "o.flac")).subtype == "PCM_24"
    with pytest.raises(ValueError):
        AudioOptions(bit_depth=12)


def test_resampy_option(tmp_path):
    src = write(tmp_path / "in.wav", sine(48000, 0.5, 1000, 0.5), 48000, "PCM_16")
    res = process_audio(src, tmp_path / "o.flac", AudioOptions(resampler="resampy"))
    y, sr = sf.read(tmp_path / "o.flac")
    assert res.status == "ok" and sr == SR and abs(len(y) - SR // 2) <= 1
    assert _dominant_freq(y, SR) == pytest.approx(1000, abs=5)


def test_content_hash_finds_same_audio_in_another_container(tmp_path):
    x = (sine(SR, 0.5, 500, 0.5) * 32767).astype(np.int16)  # the same PCM in both containers
    a = process_audio(write(tmp_path / "a.wav", x, SR, "PCM_16"), tmp_path / "a.flac")
    b = process_audio(write(tmp_path / "b.flac", x, SR, "PCM_16"), tmp_path / "b.flac")
    c = process_audio(write(tmp_path / "c.wav", x // 2, SR, "PCM_16"), tmp_path / "c.flac")
    d = process_audio(write(tmp_path / "d.flac", x.astype(np.float32) / 32768, SR, "PCM_24"), tmp_path / "d.flac")
    e = process_audio(tmp_path / "a.wav", tmp_path / "e.flac", AudioOptions(bit_depth=24))
    assert a.content_hash == b.content_hash == d.content_hash != c.content_hash  # same values in 24 bits: same sound
    assert e.content_hash != a.content_hash  # but a 24-bit output is another file


@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24"])
def test_quantise_rounds_clips_and_reads_back_exactly(tmp_path, subtype):
    bits = 16 if subtype == "PCM_16" else 24
    step = 2.0 ** -(bits - 1)
    y = np.array([0.0, 0.4 * step, 0.6 * step, -0.6 * step, 0.25, -1.0, -1.5, 1.0, 7.0, 1 - step], np.float32)
    q = quantise(y, subtype)
    back = q.astype(np.float64) / 2.0 ** (31 if bits == 24 else 15)
    want = [0.0, 0.0, step, -step, 0.25, -1.0, -1.0, 1 - step, 1 - step, 1 - step]
    assert back.tolist() == pytest.approx(want, abs=0)
    sf.write(tmp_path / "q.flac", q, SR, subtype=subtype)
    assert sf.read(tmp_path / "q.flac", dtype="float64")[0].tolist() == pytest.approx(want, abs=0)


def test_loud_input_is_clipped_not_wrapped(tmp_path):
    src = write(tmp_path / "in.wav", sine(48000, 0.5, 3000, 1.0), 48000, "FLOAT")  # resampling overshoots 1.0
    assert process_audio(src, tmp_path / "o.flac", AudioOptions(on_overshoot="clip")).clipped_samples > 0
    y, _ = sf.read(tmp_path / "o.flac")
    assert y.max() > 0.99 and y.min() < -0.99 and np.max(np.abs(np.diff(y))) < 0.5


def test_bad_options_are_refused():
    for kw in ({"resampler": "sinc"}, {"out_format": "mp3"}, {"channels": "stereo"}):
        with pytest.raises(ValueError):
            AudioOptions(**kw)


@pytest.mark.parametrize("channels", ["mono", "keep"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, "both_infs"])
def test_non_finite_sample_in_one_channel_is_found(tmp_path, channels, bad):
    """The check runs after the downmix: a NaN or inf in one channel must still show (+inf and -inf in two
    channels of one frame average to NaN)."""
    x = sine(48000, 0.5, 440, 0.3, channels=3).astype(np.float32)
    if bad == "both_infs":
        x[7000, 0], x[7000, 2] = np.inf, -np.inf
    else:
        x[7000, 1] = bad
    res = process_audio(write(tmp_path / "in.wav", x, 48000, "FLOAT"), tmp_path / "o.flac", AudioOptions(channels=channels))
    assert (res.reason, "frame 7000" in res.detail) == ("non_finite", True)
    assert not (tmp_path / "o.flac").exists()


@pytest.mark.parametrize("sr,channels", [(22050, 1), (44100, 2), (48000, 1)])  # the tag's three offsets
def test_mp3_is_held_to_its_xing_frame_count(tmp_path, sr, channels):
    x = sine(sr, 3.0, 500, 0.3, channels=channels, noise=0.01)
    full = write(tmp_path / "full.mp3", x, sr, "MPEG_LAYER_III", "MP3")
    data = full.read_bytes()
    assert mp3_declares_length(full)
    assert process_audio(full, tmp_path / "o.flac").status == "ok"
    cut = tmp_path / "cut.mp3"
    cut.write_bytes(data[: int(len(data) * 0.8)])
    res = process_audio(cut, tmp_path / "c.flac")
    assert res.reason == "truncated", res.detail  # from the frame count, or from a decode error in the cut frame
    # an ID3v2 tag in front does not hide the Xing frame
    tagged = tmp_path / "tagged.mp3"
    tagged.write_bytes(b"ID3\x04\x00\x00" + bytes([0, 0, 1, 0]) + b"\x00" * 128 + data[: int(len(data) * 0.8)])
    assert mp3_declares_length(tagged) and process_audio(tagged, tmp_path / "t.flac").reason == "truncated"


def _without_xing_frame(data: bytes) -> bytes:
    """The stream minus its first frame (libsndfile's Xing frame: zeros after its tag, so the next sync is real)."""
    return data[data.index(data[:2], 4):]


def test_mp3_frames_are_counted_from_their_headers(tmp_path):
    for sr, ch in ((44100, 1), (48000, 2), (22050, 2)):
        data = write(tmp_path / "f.mp3", sine(sr, 2.0, 500, 0.3, channels=ch), sr, "MPEG_LAYER_III", "MP3").read_bytes()
        per_frame = 1152 if sr > 32000 else 576
        tagged = tmp_path / "t.mp3"  # ID3v2 in front, ID3v1 at the end: neither is counted
        tagged.write_bytes(b"ID3\x03\x00\x00" + bytes([0, 0, 0, 20]) + b"\x00" * 20 + data + b"TAG" + b"\x00" * 125)
        # the Xing frame plus the audio frames, which hold the encoder's delay and padding around the 2 s
        assert 2 * sr + per_frame <= mp3_samples(tagged) <= 2 * sr + 4 * per_frame


def test_mp3_without_a_frame_count_is_not_cut_short(tmp_path):
    """Without a Xing/Info frame libsndfile estimates the length from the first frame's bitrate and stops reading
    there. When the frames hold more, the file is rejected rather than silently cut; a cut file cannot be told
    from a short one, so it is not judged by its length."""
    data = write(tmp_path / "full.mp3", sine(44100, 3.0, 500, 0.3), 44100, "MPEG_LAYER_III", "MP3").read_bytes()
    plain = tmp_path / "plain.mp3"
    plain.write_bytes(_without_xing_frame(data))
    assert not mp3_declares_length(plain)
    assert sf.info(str(plain)).frames < SR  # libsndfile's estimate: far short of 3 s
    res = process_audio(plain, tmp_path / "o.flac")
    assert res.reason == "unreadable" and "Xing/Info" in res.detail, res.detail


@pytest.mark.parametrize("content,expected", [
    (b"<!DOCTYPE html><html><body>Please enable JavaScript</body></html>" * 20, "a web page (HTML), not audio"),
    (b"\x00" * 5000, "only zero bytes"),
    (b"ID3\x03\x00\x00\x00\x00\x00\x20" + b"\x00" * 32, "an ID3 tag (42 bytes) and no audio after it"),
    (b'{"error": "rate limited"}' * 10, "JSON text, not audio"),
    (b"PK\x03\x04" + b"\x00" * 500, "a ZIP archive"),
    (b"Access denied. Try again later.\n" * 10, "text, not audio"),
    # lmms-common's kick04.ogg: Ogg Vorbis inside a WAV (format tag 0x674F), 26-byte fmt chunk
    (bytes.fromhex("52494646ce1b000057415645666d74201a0000004f67010044ac0000f82a00000100100008000102022031120120")
     + b"\x00" * 400, "names audio format 0x674F (Ogg Vorbis)"),
], ids=["html", "zeros", "id3_only", "json", "zip", "text", "wav_vorbis"])
def test_undecodable_file_is_described_by_its_bytes(tmp_path, capfd, content, expected):
    """Not libsndfile's "File does not exist ... (possibly a pipe?)", but what the file is; anything a decoder
    prints on stderr is kept with the result and repeated with the file's name."""
    src = tmp_path / "sound.mp3"
    src.write_bytes(content)
    res = process_audio(src, tmp_path / "o.flac")
    assert res.reason == "unreadable" and expected in res.detail and "possibly a pipe" not in res.detail, res.detail
    err = capfd.readouterr().err
    for line in res.extra.get("decoder_messages", []):
        assert f"{src}: {line}" in err and line in res.detail
    assert all(line.startswith(str(src)) for line in err.splitlines()), err


def test_decoder_chatter_on_a_damaged_mp3_is_attributed(tmp_path, capfd):
    src = damaged_mp3(tmp_path)  # a damaged stretch: libmpg123 notes and resyncs
    res = process_audio(src, tmp_path / "o.flac")
    err = capfd.readouterr().err
    assert res.extra.get("decoder_messages"), (res.status, res.reason, err)
    assert err and all(line.startswith(f"{src}: ") for line in err.splitlines()), err
