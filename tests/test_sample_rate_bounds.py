"""Issue 21 item 5: a tiny file that claims a tiny sample rate, or a huge length, must not become gigabytes of
samples: rates outside 4-768 kHz are refused with a reason (curation, and read_audio for index, evaluation and
training), and only the frames that decode are held."""
import numpy as np
import pytest
import soundfile as sf

from curation.audio import REASONS, AudioOptions, process_audio
from manifests.audio_formats import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, sample_rate_problem
from tests.synth import pcm_wav_bytes, sine, write
from training.data import read_audio, to_model_rate


def test_the_range_is_stated_once():
    assert (MIN_SAMPLE_RATE, MAX_SAMPLE_RATE) == (4_000, 768_000)
    assert sample_rate_problem(4_000) == sample_rate_problem(768_000) == ""
    assert "3,999 Hz is outside" in sample_rate_problem(3_999) and sample_rate_problem(768_001)


def test_a_444_byte_wav_declaring_1_hz_is_rejected_not_made_200_s_long(tmp_path):
    src = tmp_path / "tiny.wav"
    src.write_bytes(pcm_wav_bytes(1, 200))
    assert src.stat().st_size == 444 and sf.info(str(src)).samplerate == 1
    res = process_audio(src, tmp_path / "out.flac", AudioOptions(min_duration_s=0))
    assert (res.status, res.reason) == ("rejected", "bad_sample_rate") and "bad_sample_rate" in REASONS
    assert "1 Hz is outside the 4,000-768,000 Hz" in res.detail
    assert not (tmp_path / "out.flac").exists()
    with pytest.raises(ValueError, match=r"tiny.wav: the sample rate 1 Hz is outside"):
        read_audio(str(src))
    with pytest.raises(ValueError, match="outside"):
        to_model_rate(np.zeros(2000, np.float32), 1)
    with pytest.raises(ValueError, match="output sample rate"):
        AudioOptions(target_sr=1)


def test_a_4_kb_file_at_the_lowest_rate_stays_small(tmp_path):
    src = tmp_path / "low.wav"
    src.write_bytes(pcm_wav_bytes(MIN_SAMPLE_RATE, 2000))
    assert len(read_audio(str(src))) <= 2000 * 44100 // MIN_SAMPLE_RATE + 64  # at most 11x its frames
    assert process_audio(src, tmp_path / "low.flac").status == "ok"


def test_a_header_claiming_2_to_the_36_frames_is_read_for_what_it_holds(tmp_path):
    """A small FLAC whose STREAMINFO claims 2^36 frames: soundfile's whole-file read allocates what the header
    claims (256 GiB); read_audio reads blocks and says what is wrong, curation rejects it as truncated."""
    src = write(tmp_path / "liar.flac", sine(44100, 0.2, 440, 0.3), 44100, "PCM_16")
    raw = bytearray(src.read_bytes())
    assert raw[:4] == b"fLaC" and raw[4] & 0x7F == 0  # STREAMINFO first
    field = int.from_bytes(raw[18:26], "big")  # rate 20 bits, channels 3, bits 5, total samples 36
    raw[18:26] = ((field >> 36 << 36) | (1 << 36) - 1).to_bytes(8, "big")
    src.write_bytes(bytes(raw))
    assert sf.info(str(src)).frames == (1 << 36) - 1
    with pytest.raises(ValueError, match=r"liar.flac: damaged or truncated: its header declares 68,719,476,735 "
                                         r"frames, decoding failed"):
        read_audio(str(src))
    res = process_audio(src, tmp_path / "liar_out.flac")
    assert (res.status, res.reason) == ("rejected", "truncated")
