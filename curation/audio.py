"""Decode, check, resample and write one audio file, streaming in blocks so that memory stays bounded
whatever the file's length (a 45-minute recording never becomes hours of float audio in memory).

``process_audio`` returns an ``AudioResult``: either a written 44.1 kHz file, or a rejection with a reason
from ``REASONS``. It runs in worker processes, so it takes and returns plain picklable values.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import stat
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile as sf
import soxr

from manifests.audio_formats import sample_rate_problem
from manifests.hashing import sha256_file

from manifests.decoder_messages import StderrCapture, repeat_on_stderr
from .mp3_frames import MP3_FRAME, mp3_declares_length, mp3_samples
from .samples import downmix, headroom_gain, peak, quantise
from .sniff import describe_bytes

# Why a file can be rejected by the audio stage.
REASONS = {
    "missing_file": "the audio file does not exist",
    "empty": "the file has 0 bytes",
    "unreadable": "not decodable as audio (garbage bytes, unknown format)",
    "header_only": "a valid header but no audio frames",
    "truncated": "fewer frames than the header declares, or a decode error after a valid header",
    "bad_sample_rate": "the header declares a sample rate outside 4-768 kHz (damaged or hostile)",
    "non_finite": "NaN or infinite samples (float files)",
    "too_short": "shorter than the minimum duration",
    "silent": "digitally silent: peak (after the channel policy) at or below the silence threshold",
}
RESAMPLERS = ("soxr", "resampy")
# Output container and default sample format: 16-bit FLAC is ample for training (AudioCaps and Clotho are 16-bit)
# and a third smaller and faster to encode than 24-bit; WAV is PCM_24 as the published download script writes it.
FORMATS = {"flac": ("FLAC", "PCM_16"), "wav": ("WAV", "PCM_24")}
BIT_DEPTHS = {16: "PCM_16", 24: "PCM_24"}
CHANNEL_POLICIES = ("mono", "keep")
# What to do when the resampled signal would exceed full scale: "attenuate" the whole file by one gain (default:
# no sample is lost), or "clip" (levels untouched, the clipped samples counted).
OVERSHOOT_POLICIES = ("attenuate", "clip")
# libsndfile's log for a WAV whose data chunk claims more bytes than the file holds.
_WAV_SHORT = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.M)
# A data size of 0 or 0xFFFFFFFF is how streaming writers mark "unknown length", not truncation.
_STREAMING_SIZES = (0, 0xFFFFFFFF)
# Bumped when the meaning of a result changes (2: content_hash is over the written samples; 3: headroom gain,
# out_peak, clipped_samples; 4: rates outside 4-768 kHz rejected): older results are redone.
RESULT_VERSION = 4


@dataclass(frozen=True)
class AudioOptions:
    target_sr: int = 44100
    resampler: str = "soxr"          # "soxr" (streaming, default) or "resampy" (kaiser_best, whole file)
    soxr_quality: str = "HQ"
    out_format: str = "flac"         # "flac" or "wav"
    bit_depth: int | None = None     # 16 or 24; None: the format's default (FLAC 16, WAV 24)
    channels: str = "mono"           # "mono" downmix for training, or "keep" the original channels
    min_duration_s: float = 0.1
    silence_dbfs: float = -90.0      # peak at or below this is silent (-90 dBFS is about one 16-bit step)
    on_overshoot: str = "attenuate"  # "attenuate" (one gain per file, nothing clipped) or "clip"
    block_frames: int = 1 << 17      # frames decoded per block
    hold_frames: int = 1 << 21       # output frames held in memory until the peak is known (longer: 2 passes)

    def __post_init__(self):
        if self.resampler not in RESAMPLERS:
            raise ValueError(f"unknown resampler {self.resampler!r} (use one of {RESAMPLERS})")
        if self.out_format not in FORMATS:
            raise ValueError(f"unknown output format {self.out_format!r} (use one of {tuple(FORMATS)})")
        if self.bit_depth is not None and self.bit_depth not in BIT_DEPTHS:
            raise ValueError(f"unsupported bit depth {self.bit_depth!r} (use one of {tuple(BIT_DEPTHS)})")
        if self.channels not in CHANNEL_POLICIES:
            raise ValueError(f"unknown channel policy {self.channels!r} (use one of {CHANNEL_POLICIES})")
        if self.on_overshoot not in OVERSHOOT_POLICIES:
            raise ValueError(f"unknown overshoot policy {self.on_overshoot!r} (use one of {OVERSHOOT_POLICIES})")
        if not (isinstance(self.target_sr, int) and self.target_sr > 0):
            raise ValueError(f"the sample rate must be a positive number of Hz, got {self.target_sr!r}")
        if sample_rate_problem(self.target_sr):
            raise ValueError(f"output sample rate: {sample_rate_problem(self.target_sr)}")
        if not self.min_duration_s >= 0:
            raise ValueError(f"the minimum duration must be 0 s or more, got {self.min_duration_s!r}")
        if self.block_frames <= 0 or self.hold_frames < 0:
            raise ValueError("block_frames must be positive and hold_frames non-negative")

    @property
    def extension(self) -> str:
        return self.out_format

    @property
    def subtype(self) -> str:
        return BIT_DEPTHS[self.bit_depth] if self.bit_depth else FORMATS[self.out_format][1]

    def key(self) -> str:
        """What decides the output (block and hold sizes do not): a changed key means the file must be redone."""
        d = asdict(self)
        d.pop("block_frames")
        d.pop("hold_frames")
        d["result_version"] = RESULT_VERSION
        return json.dumps(d, sort_keys=True)


@dataclass
class AudioResult:
    status: str                       # "ok" or "rejected"
    reason: str = ""                  # a REASONS key when rejected
    detail: str = ""
    duration_s: float | None = None   # of the written file
    sample_rate: int | None = None
    channels: int | None = None
    frames: int | None = None
    orig_sample_rate: int | None = None
    orig_channels: int | None = None
    orig_frames: int | None = None
    orig_format: str = ""
    orig_subtype: str = ""
    content_hash: str = ""            # sha256 of the written samples (+ rate, channels, bits): finds exact duplicates
    sha256: str = ""                  # sha256 of the written file's bytes
    peak: float | None = None         # of the decoded input after the channel policy, before resampling
    out_peak: float | None = None     # of the resampled signal, before the gain (above 1.0: it would clip)
    gain: float | None = None         # the one gain applied to the whole file (1.0: untouched)
    clipped_samples: int | None = None  # samples clipped by the quantiser (0 unless on_overshoot="clip")
    extra: dict = field(default_factory=dict)


class _Reject(Exception):
    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


def process_audio(src: str | os.PathLike, dst: str | os.PathLike, opts: AudioOptions = AudioOptions()) -> AudioResult:
    """Check ``src`` and write it to ``dst`` at ``opts.target_sr`` in ``opts.out_format``; on rejection nothing
    is left at ``dst`` (the file is written under a temporary name and renamed only when accepted). What the
    decoders print on stderr (libmpg123's notes and warnings) is captured, kept in ``extra["decoder_messages"]``
    (and in the detail of a rejection) and repeated on stderr with the file's name."""
    src, dst = Path(src), Path(dst)
    result = AudioResult(status="rejected")
    tmp = dst.with_name(f".{dst.name}.part")
    with StderrCapture() as said:
        try:
            _convert(src, dst, tmp, opts, result)
            result.status = "ok"
            result.sha256 = sha256_file(dst)
        except _Reject as r:
            result.reason, result.detail = r.reason, r.detail
        finally:
            tmp.unlink(missing_ok=True)
    if said.lines:
        result.extra["decoder_messages"] = said.lines[:20]
        if result.status != "ok":
            result.detail += f"; the decoder said: {' | '.join(said.lines[:3])}"
        repeat_on_stderr(src, said.lines)
    return result


def _open(src: Path) -> sf.SoundFile:
    try:
        st = src.stat()
    except (FileNotFoundError, NotADirectoryError):
        raise _Reject("missing_file", str(src)) from None
    except OSError as e:  # a name too long, a loop of links, no permission: the path's fault, not the run's
        raise _Reject("missing_file", f"{src}: {e.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise _Reject("missing_file", f"{src} is not a regular file")
    if st.st_size == 0:
        raise _Reject("empty", "0 bytes")
    try:
        return sf.SoundFile(src)
    except (RuntimeError, ValueError, TypeError) as e:  # LibsndfileError is a RuntimeError
        # libsndfile's message names the path (already in the reject's id) and, for some formats it cannot
        # recognise, says "File does not exist ... (possibly a pipe?)": say what the bytes are instead.
        said = re.sub(r"^Error opening .*?: ", "", str(e).strip())
        if "possibly a pipe" in said:
            said = "format not recognised"
        raise _Reject("unreadable", f"{describe_bytes(src)}; libsndfile: {said}") from None


def _declared_longer(f: sf.SoundFile) -> str:
    """A WAV/AIFF header that claims more data than the file holds ("" when it does not)."""
    m = _WAV_SHORT.search(f.extra_info)
    if m and int(m.group(1)) not in _STREAMING_SIZES and int(m.group(1)) > int(m.group(2)):
        return f"header declares {m.group(1)} data bytes, file holds {m.group(2)}"
    return ""


def _resampled(src: Path, f: sf.SoundFile, opts: AudioOptions, res: AudioResult) -> Iterator[np.ndarray]:
    """Decode ``f`` block by block, check it, apply the channel policy and resample: yields output-rate float
    blocks ((frames,) mono or (frames, channels)), some of them views of a reused buffer. Raises _Reject when a
    check fails; the checks that need the whole file run before the resampler's last block is yielded."""
    sr, ch, declared = f.samplerate, f.channels, f.frames
    res.orig_sample_rate, res.orig_channels = sr, ch
    res.orig_format, res.orig_subtype = f.format, f.subtype or ""
    if declared == 0:
        raise _Reject("header_only", f"{f.format} header, 0 frames")
    if sample_rate_problem(sr):  # checked before any resampling: 1 Hz would grow every frame 44,100 times
        raise _Reject("bad_sample_rate", f"the {f.format} header declares {sample_rate_problem(sr)}")
    out_ch = 1 if opts.channels == "mono" else ch
    stream = None
    if sr != opts.target_sr and opts.resampler == "soxr":
        stream = soxr.ResampleStream(sr, opts.target_sr, out_ch, dtype="float32", quality=opts.soxr_quality)
    whole: list[np.ndarray] = []  # only used by the resampy path, which is not streaming
    n_in = 0
    top = 0.0  # the input's peak after the channel policy
    # One reused buffer: soundfile's blocks() would copy every block.
    buf = np.empty((opts.block_frames, ch), np.float32)
    while True:
        try:
            block = f.read(opts.block_frames, dtype="float32", always_2d=True, out=buf)
        except RuntimeError as e:  # decode error after a valid header: the stream is cut off or damaged
            raise _Reject("truncated", f"decode error after {n_in} of {declared} frames: {str(e).strip()}") from None
        if not len(block):
            break
        x = downmix(block) if out_ch == 1 else block
        # Judged on what will be written: a phase-inverted stereo pair downmixes to silence. A NaN or inf in
        # any channel stays one through the downmix (a sum), so x shows it too.
        m = peak(x)
        if not np.isfinite(m):
            bad = ~np.isfinite(block)
            kind = "NaN" if np.isnan(block).any() else "infinite"
            raise _Reject("non_finite", f"{kind} sample at frame {n_in + int(np.argmax(bad.any(axis=1)))}")
        n_in += len(block)
        top = max(top, m)
        if stream is not None:
            yield stream.resample_chunk(x)
        elif sr != opts.target_sr:
            whole.append(np.array(x))
        else:
            yield x
    if n_in == 0:
        raise _Reject("header_only", f"{f.format} header, no decodable frames")
    short = _declared_longer(f)
    if not short and f.format != "MP3" and n_in < declared:
        short = f"decoded {n_in} of {declared} declared frames"
    # An MP3 is held to its Xing/Info frame count, less one frame of slack (losing under 30 ms at the end
    # is harmless, a mistaken rejection is not); without that tag its count is only an estimate.
    elif not short and f.format == "MP3":
        if mp3_declares_length(src):
            if n_in < declared - MP3_FRAME:
                short = f"decoded {n_in} of the {declared} frames its Xing/Info header declares"
        elif (held := mp3_samples(src)) > n_in + 2 * MP3_FRAME:
            # libsndfile stops at its estimate (from the first frame's bitrate): the rest would be lost.
            raise _Reject("unreadable", f"MP3 without a Xing/Info header: libsndfile estimated {declared} "
                                        f"frames and stopped there, but its frames hold about {held}")
    if short:
        raise _Reject("truncated", short)
    duration = n_in / sr
    if duration < opts.min_duration_s:
        raise _Reject("too_short", f"{duration:.3f} s < {opts.min_duration_s} s")
    peak_dbfs = 20 * np.log10(top) if top > 0 else float("-inf")
    if peak_dbfs <= opts.silence_dbfs:
        raise _Reject("silent", f"peak {peak_dbfs:.1f} dBFS <= {opts.silence_dbfs} dBFS")
    res.orig_frames, res.peak = n_in, top
    if stream is not None:
        yield stream.resample_chunk(np.zeros((0, out_ch) if out_ch > 1 else 0, np.float32), last=True)
    elif whole:
        import resampy  # optional: only the resampy path needs it
        yield np.ascontiguousarray(resampy.resample(np.concatenate(whole), sr, opts.target_sr, axis=0,
                                                    filter="kaiser_best"), dtype=np.float32)


class _Writer:
    """Quantises (with one gain), hashes and writes output blocks to ``tmp``; opened on the first block."""

    def __init__(self, tmp: Path, opts: AudioOptions, channels: int, gain: float):
        self.tmp, self.opts, self.channels, self.gain = tmp, opts, channels, gain
        self.subtype = opts.subtype
        # Duplicates are judged on what is written: the same sound in two containers or bit depths is one sound.
        self.content = hashlib.sha256(f"{opts.target_sr}:{channels}:{self.subtype}:".encode())
        self.frames = 0
        self.clipped = [0]
        self.out = sf.SoundFile(tmp, "w", samplerate=opts.target_sr, channels=channels,
                                format=FORMATS[opts.out_format][0], subtype=self.subtype)

    def write(self, y: np.ndarray) -> None:
        if len(y):
            q = quantise(y, self.subtype, self.gain, self.clipped)
            self.content.update(q)
            try:
                self.out.write(q)
            except RuntimeError as e:
                raise output_error(self.tmp, e) from None
            self.frames += len(y)

    def close(self) -> None:
        try:
            self.out.close()
        except RuntimeError as e:
            raise output_error(self.tmp, e) from None


def output_error(path: Path, e: Exception) -> OSError:
    """An OSError for a failed write of ``path``: libsndfile reports only "System error", so a full disk is
    recognised by the space left, because it is no file's fault and must stop the run (curation.pipeline)."""
    try:
        full = shutil.disk_usage(path.parent).free < 1 << 20
    except OSError:
        full = False
    if full:
        return OSError(errno.ENOSPC, f"No space left on device (libsndfile: {e})", str(path))
    return OSError(errno.EIO, f"writing failed (libsndfile: {e})", str(path))


def _convert(src: Path, dst: Path, tmp: Path, opts: AudioOptions, res: AudioResult) -> None:
    """Convert with the headroom policy: the resampled signal's peak decides one gain for the whole file.
    Output blocks are held in memory (up to ``opts.hold_frames``) until the peak is known. A longer file is
    written as it streams; if its peak turns out to overshoot, writing stops there, the rest is only measured,
    and the file is decoded a second time at the measured gain (the second pass holds nothing)."""
    attenuate = opts.on_overshoot == "attenuate"
    dst.parent.mkdir(parents=True, exist_ok=True)
    out_peak = 0.0
    mode = "hold" if attenuate else "stream"  # then "stream" (written at gain 1) or "measure" (peak only)
    held: list[np.ndarray] = []
    n_held = 0
    writer: _Writer | None = None
    try:
        with _open(src) as f:
            out_ch = 1 if opts.channels == "mono" else f.channels
            for y in _resampled(src, f, opts, res):
                if not len(y):
                    continue
                out_peak = max(out_peak, peak(y))
                if mode == "hold":
                    held.append(y if y.flags.owndata else y.copy())  # views of the decode buffer change
                    n_held += len(y)
                    if n_held <= opts.hold_frames:
                        continue
                    mode, blocks, held = "stream", held, []  # too long to hold
                else:
                    blocks = [y]
                if mode == "stream" and attenuate and headroom_gain(out_peak, opts.subtype) < 1.0:
                    mode = "measure"  # it will be written again, at a gain: stop encoding now
                    if writer is not None:
                        writer.close()
                        writer = None
                if mode == "stream":
                    writer = writer or _Writer(tmp, opts, out_ch, 1.0)
                    for b in blocks:
                        writer.write(b)
        gain = headroom_gain(out_peak, opts.subtype) if attenuate else 1.0
        if mode == "hold":
            writer = _Writer(tmp, opts, out_ch, gain)
            for b in held:
                writer.write(b)
        elif mode == "measure":  # a streamed file that overshoots: second pass at the measured gain
            writer = _Writer(tmp, opts, out_ch, gain)
            with _open(src) as f:
                for y in _resampled(src, f, opts, AudioResult(status="rejected")):
                    writer.write(y)
        elif writer is None:  # nothing came out of the resampler
            writer = _Writer(tmp, opts, out_ch, gain)
    finally:
        if writer is not None:
            writer.close()
    os.replace(tmp, dst)
    res.content_hash = writer.content.hexdigest()
    res.frames, res.sample_rate, res.channels = writer.frames, opts.target_sr, out_ch
    res.duration_s = writer.frames / opts.target_sr
    res.out_peak, res.gain, res.clipped_samples = out_peak, gain, writer.clipped[0]
