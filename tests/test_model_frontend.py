"""The log-mel front-end against independent numpy references (STFT, Slaney mel scale, dB conventions)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from training.frontend import FrontendConfig, LogMel, SpecAugment, slaney_mel_filterbank


def slaney_hz_to_mel(f: np.ndarray) -> np.ndarray:
    # Slaney's Auditory Toolbox scale (librosa htk=False): linear to 1 kHz, logarithmic above.
    f = np.asarray(f, dtype=float)
    lin = f / (200.0 / 3)
    log = 15.0 + np.log(np.maximum(f, 1e-9) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(f >= 1000.0, log, lin)


def slaney_mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=float)
    return np.where(m >= 15.0, 1000.0 * np.exp((m - 15.0) * np.log(6.4) / 27.0), m * 200.0 / 3)


def mel_centres(cfg: FrontendConfig) -> np.ndarray:
    edges = np.linspace(slaney_hz_to_mel(cfg.fmin), slaney_hz_to_mel(cfg.fmax), cfg.mel_bins + 2)
    return slaney_mel_to_hz(edges)[1:-1]


def numpy_power_spectrogram(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """Centred STFT power as librosa/torchlibrosa: reflect padding, periodic Hann."""
    padded = np.pad(x, n_fft // 2, mode="reflect")
    n_frames = 1 + (len(padded) - n_fft) // hop
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    frames = np.stack([padded[i * hop:i * hop + n_fft] * window for i in range(n_frames)])
    return np.abs(np.fft.rfft(frames, axis=1)) ** 2


def test_frames_and_shape():
    cfg = FrontendConfig()
    fe = LogMel(cfg)
    for n in (1000, 44100, 327360):
        out = fe(torch.zeros(2, n))
        assert out.shape == (2, n // 320 + 1, 64) == (2, cfg.num_frames(n), 64)
    assert cfg.num_frames(cfg.samples_for_frames(1024)) == 1024


def test_power_spectrogram_matches_numpy_stft():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(5000)
    cfg = FrontendConfig()
    ours = LogMel(cfg).power_spectrogram(torch.from_numpy(x).float()[None])[0].numpy()
    ref = numpy_power_spectrogram(x, cfg.window_size, cfg.hop_size)
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, rtol=1e-3, atol=1e-2 * ref.mean())


def test_slaney_filterbank_peaks_and_area():
    cfg = FrontendConfig()
    fb = slaney_mel_filterbank(cfg).numpy()
    assert fb.shape == (513, 64)
    bin_hz = cfg.sample_rate / cfg.window_size
    centres = mel_centres(cfg)
    # Each triangle peaks at the FFT bin next to its Slaney-scale centre frequency.
    peaks = fb.argmax(axis=0) * bin_hz
    assert np.all(np.abs(peaks - centres) <= bin_hz)
    # Slaney normalisation: unit area in Hz, checked where triangles span many FFT bins.
    edges = slaney_mel_to_hz(np.linspace(slaney_hz_to_mel(cfg.fmin), slaney_hz_to_mel(cfg.fmax), 66))
    wide = (edges[2:] - edges[:-2]) > 8 * bin_hz
    assert wide.sum() >= 10
    np.testing.assert_allclose(fb[:, wide].sum(axis=0) * bin_hz, 1.0, rtol=0.05)
    # nothing outside [fmin, fmax]
    freqs = np.arange(513) * bin_hz
    assert fb[freqs > cfg.fmax + bin_hz].sum() == 0


@pytest.mark.parametrize("freq", [440.0, 1000.0, 3000.0, 6500.0])
def test_sine_energy_lands_in_its_mel_bin(freq):
    cfg = FrontendConfig()
    t = torch.arange(44100) / cfg.sample_rate
    logmel = LogMel(cfg)(torch.sin(2 * math.pi * freq * t)[None])[0]
    loudest = int(logmel[5:-5].mean(0).argmax())
    nearest = np.argsort(np.abs(mel_centres(cfg) - freq))[:2]
    assert loudest in nearest


def test_db_conventions_and_top_db():
    cfg = FrontendConfig()
    fe = LogMel(cfg)
    silent = fe(torch.zeros(1, 4000))
    assert torch.allclose(silent, torch.full_like(silent, 10 * math.log10(cfg.amin)))  # amin floor: -100 dB
    x = torch.randn(1, 4000, generator=torch.Generator().manual_seed(1))
    mel_power = numpy_power_spectrogram(x[0].double().numpy(), 1024, 320) @ slaney_mel_filterbank(cfg).double().numpy()
    np.testing.assert_allclose(fe(x)[0].numpy(), 10 * np.log10(np.maximum(mel_power, 1e-10)), atol=1e-3)
    # top_db floors each example against its own peak
    fe80 = LogMel(FrontendConfig(top_db=20.0))
    loud_and_quiet = torch.cat([x, 1e-3 * x])
    out = fe80(loud_and_quiet)
    for b in range(2):
        assert out[b].min() >= out[b].max() - 20.0 - 1e-4
    torch.testing.assert_close(out[1] - out[1].max(), out[0] - out[0].max(), atol=1e-3, rtol=0)


def test_rejects_bad_input_and_config():
    fe = LogMel(FrontendConfig())
    with pytest.raises(ValueError, match="B, T"):
        fe(torch.zeros(100))
    with pytest.raises(ValueError, match="too short"):
        fe(torch.zeros(1, 400))
    with pytest.raises(ValueError, match="fmax"):
        LogMel(FrontendConfig(fmax=30000))
    with pytest.raises(ValueError, match="unknown keys"):
        FrontendConfig.from_dict({"n_mels": 64})


def test_deterministic_and_specaugment_only_in_training():
    x = torch.randn(2, 20000)
    fe = LogMel(FrontendConfig())
    a, b = fe(x), fe(x)
    assert torch.equal(a, b)
    aug = SpecAugment(time_drop_width=10, freq_drop_width=4)
    aug.eval()
    assert torch.equal(aug(a), a)
    aug.train()
    torch.manual_seed(0)
    dropped = aug(a + 200)  # shift so that zeros can only come from dropped stripes
    zero = dropped == 0
    # whole time rows or whole mel columns are zeroed, never scattered cells
    rows, cols = zero.all(dim=2), zero.all(dim=1)
    assert torch.equal(zero, rows[:, :, None] | cols[:, None, :])
    assert zero.any()
