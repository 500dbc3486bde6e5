"""Procedurally generated sounds whose captions describe them, for the offline demo.

Each clip is one or two events in sequence (a steady tone, a rising or falling sweep, clicks, a noise burst,
rhythmic beeps), each with its own loudness and, where it applies, pitch and tempo. Every clip gets several
captions that say the same thing in different words ("A loud high tone followed by soft clicks." /
"First a strong shrill whistle, then faint ticking."). The output is what a site would hold:

- ``<out>/demo_sounds.csv``: the published WavText5K format (view_link, download_link, title, description,
  fname, tags), half of the rows in SoundBible's URL shapes and half in BigSoundBank's, so that both real
  spiders crawl them from the mirror (``wt5k-mirror --csv ... --audio-dir ...``);
- ``<out>/audio/<fname>``: the audio of each row (WAV at mixed sample rates and channel counts);
- ``<out>/captions.json``: every caption of every clip by id, for a multi-caption evaluation.
"""
from __future__ import annotations

import argparse
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from manifests.published import PublishedRow, write_published_csv

EVENT_KINDS = ("tone", "sweep_up", "sweep_down", "clicks", "noise", "beeps")
PITCH_HZ = {"low": 220.0, "mid": 660.0, "high": 1980.0}
TEMPO_HZ = {"slow": 3.0, "fast": 12.0}
# Peak amplitude per loudness: 24 dB apart, well above the noise floor, never digitally silent.
LOUDNESS_PEAK = {"loud": 0.8, "quiet": 0.05}
NOISE_FLOOR = 1e-4
SAMPLE_RATES = (44100, 48000, 22050)

# Wordings. Each list holds synonyms; a caption draws one of each.
_PITCH_WORDS = {"low": ["low", "low-pitched", "deep"], "mid": ["medium", "mid-pitched", "middle"],
                "high": ["high", "high-pitched", "shrill"]}
_TEMPO_WORDS = {"slow": ["slow", "unhurried", "leisurely"], "fast": ["fast", "rapid", "quick"]}
_LOUD_WORDS = {"loud": ["loud", "strong", "powerful", "intense"], "quiet": ["quiet", "soft", "faint", "gentle"]}
_EVENT_WORDS = {
    "tone": ["{p} tone", "steady {p} note", "{p} pure tone", "sustained {p} whistle", "continuous {p} tone"],
    "sweep_up": ["rising sweep", "upward chirp", "tone gliding upwards", "pitch sweep going up", "ascending glide"],
    "sweep_down": ["falling sweep", "downward chirp", "tone gliding downwards", "pitch sweep going down",
                   "descending glide"],
    "clicks": ["series of {t} clicks", "{t} clicking", "{t} ticking", "train of {t} clicks", "{t} run of ticks"],
    "noise": ["burst of noise", "noise burst", "hiss of white noise", "static burst", "blast of static"],
    "beeps": ["{t} {p} beeps", "{t} pulsing {p} beeps", "{t} series of {p} beeps", "{t} rhythmic {p} beeping",
              "{t} {p} pulses"],
}
_SEQUENCE_TEMPLATES = ["{a} followed by {b}", "{a}, then {b}", "first {a}, then {b}", "{a} and afterwards {b}",
                       "{b} coming after {a}", "{a}; after that {b}"]
_SINGLE_TEMPLATES = ["{a}", "just {a}", "a single {a_bare}", "{a} on its own", "only {a}"]
_TITLE_NAMES = {"tone": "{P} Tone", "sweep_up": "Rising Sweep", "sweep_down": "Falling Sweep",
                "clicks": "{T} Clicks", "noise": "Noise Burst", "beeps": "{T} {P} Beeps"}


@dataclass
class Event:
    kind: str
    loudness: str
    pitch: str | None = None  # tone and beeps
    tempo: str | None = None  # clicks and beeps

    def tags(self) -> list[str]:
        base = {"tone": ["tone"], "sweep_up": ["sweep", "rising"], "sweep_down": ["sweep", "falling"],
                "clicks": ["clicks"], "noise": ["noise"], "beeps": ["beeps", "rhythm"]}[self.kind]
        return base + [w for w in (self.pitch, self.tempo, self.loudness) if w]


@dataclass
class DemoClip:
    id: str
    source: str
    source_id: str
    events: list[Event]
    sample_rate: int
    channels: int
    title: str
    captions: list[str] = field(default_factory=list)
    fname: str = ""


def _article(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def _event_phrase(ev: Event, rng: np.random.Generator, with_article: bool = True) -> str:
    words = str(rng.choice(_EVENT_WORDS[ev.kind]))
    words = words.format(p=rng.choice(_PITCH_WORDS.get(ev.pitch, [""])),
                         t=rng.choice(_TEMPO_WORDS.get(ev.tempo, [""]))).strip()
    phrase = f"{rng.choice(_LOUD_WORDS[ev.loudness])} {words}"
    phrase = " ".join(phrase.split())
    return _article(phrase) if with_article else phrase


def describe(events: list[Event], rng: np.random.Generator) -> str:
    """One caption for a sequence of events, in words drawn from the synonym lists."""
    if len(events) == 1:
        tpl = str(rng.choice(_SINGLE_TEMPLATES))
        text = tpl.format(a=_event_phrase(events[0], rng), a_bare=_event_phrase(events[0], rng, False))
    elif len(events) == 2:
        text = str(rng.choice(_SEQUENCE_TEMPLATES)).format(a=_event_phrase(events[0], rng),
                                                           b=_event_phrase(events[1], rng))
    else:
        raise ValueError(f"clips hold one or two events, got {len(events)}")
    return text[0].upper() + text[1:] + "."


def title_of(events: list[Event]) -> str:
    names = []
    for ev in events:
        name = _TITLE_NAMES[ev.kind].format(P=(ev.pitch or "").title(), T=(ev.tempo or "").title())
        names.append(f"{ev.loudness.title()} {name}")
    return " Then ".join(names)


def _random_event(rng: np.random.Generator) -> Event:
    kind = str(rng.choice(EVENT_KINDS))
    return Event(kind=kind, loudness=str(rng.choice(list(LOUDNESS_PEAK))),
                 pitch=str(rng.choice(list(PITCH_HZ))) if kind in ("tone", "beeps") else None,
                 tempo=str(rng.choice(list(TEMPO_HZ))) if kind in ("clicks", "beeps") else None)


def _fade(x: np.ndarray, sr: int, ms: float = 10.0) -> np.ndarray:
    n = min(int(sr * ms / 1000), len(x) // 2)
    if n > 0:
        ramp = np.linspace(0.0, 1.0, n)
        x[:n] *= ramp
        x[-n:] *= ramp[::-1]
    return x


def synthesize_event(ev: Event, sr: int, duration_s: float, rng: np.random.Generator) -> np.ndarray:
    """The waveform of one event, peak-normalised to its loudness (small random detuning keeps clips distinct)."""
    n = int(sr * duration_s)
    t = np.arange(n) / sr
    detune = float(rng.uniform(0.93, 1.07))
    if ev.kind == "tone":
        x = np.sin(2 * np.pi * PITCH_HZ[ev.pitch] * detune * t)
    elif ev.kind in ("sweep_up", "sweep_down"):
        f0, f1 = 300.0 * detune, 3000.0 * detune
        if ev.kind == "sweep_down":
            f0, f1 = f1, f0
        k = np.log(f1 / f0) / duration_s  # exponential chirp: equal time per octave
        x = np.sin(2 * np.pi * f0 * (np.exp(k * t) - 1) / k)
    elif ev.kind == "clicks":
        x = np.zeros(n)
        period = int(sr / (TEMPO_HZ[ev.tempo] * detune))
        click = rng.standard_normal(int(0.003 * sr)) * np.exp(-np.arange(int(0.003 * sr)) / (0.0006 * sr))
        for start in range(int(0.02 * sr), n - len(click), period):
            x[start:start + len(click)] += click
    elif ev.kind == "noise":
        x = rng.standard_normal(n)
    elif ev.kind == "beeps":
        period = 1.0 / (TEMPO_HZ[ev.tempo] * 0.5 * detune)  # beeps are half as frequent as clicks at the same tempo
        gate = ((t % period) < period * 0.5).astype(float)
        x = np.sin(2 * np.pi * PITCH_HZ[ev.pitch] * detune * t) * gate
    else:
        raise ValueError(f"unknown event kind {ev.kind!r}")
    x = _fade(x, sr)
    peak = float(np.max(np.abs(x))) or 1.0
    return x / peak * LOUDNESS_PEAK[ev.loudness] * float(rng.uniform(0.85, 1.0))


def synthesize(events: list[Event], sr: int, rng: np.random.Generator) -> np.ndarray:
    """Events one after the other with short silences around them, over a faint noise floor."""
    parts = [np.zeros(int(sr * rng.uniform(0.05, 0.25)))]
    for ev in events:
        parts.append(synthesize_event(ev, sr, float(rng.uniform(0.9, 1.4)), rng))
        parts.append(np.zeros(int(sr * rng.uniform(0.1, 0.3))))
    x = np.concatenate(parts)
    return (x + rng.standard_normal(len(x)) * NOISE_FLOOR).astype(np.float32)


def _soundbible_slug(title: str) -> str:
    # SoundBible's slug: every non-alphanumeric character becomes '-', case kept, nothing collapsed.
    return re.sub(r"[^A-Za-z0-9]", "-", title)


def _bigsoundbank_slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def make_clips(n: int, seed: int = 0, captions_per_clip: int = 5) -> list[DemoClip]:
    """n clip descriptions (no audio yet): events, format and captions, alternating between the two sites."""
    if n < 1:
        raise ValueError(f"need at least one clip, got {n}")
    rng = np.random.default_rng(seed)
    clips = []
    title_count: dict[tuple[str, str], int] = {}
    for i in range(n):
        events = [_random_event(rng) for _ in range(1 if rng.random() < 0.3 else 2)]
        if i % 2 == 0:
            source, source_id = "soundbible", str(3001 + i // 2)
        else:
            source, source_id = "bigsoundbank", f"{5001 + i // 2:04d}"
        captions: list[str] = []
        for _ in range(captions_per_clip * 10):  # distinct wordings; give up after enough tries
            c = describe(events, rng)
            if c not in captions:
                captions.append(c)
            if len(captions) == captions_per_clip:
                break
        # Repeated titles get a number, as on the real sites ("Rain and Storm 2"): a site's static file names
        # may derive from the title alone.
        title = title_of(events)
        k = title_count[(source, title)] = title_count.get((source, title), 0) + 1
        clips.append(DemoClip(id=f"{source}:{source_id}", source=source, source_id=source_id, events=events,
                              sample_rate=int(rng.choice(SAMPLE_RATES)), channels=int(rng.choice([1, 1, 2])),
                              title=title if k == 1 else f"{title} {k}", captions=captions))
    return clips


def _published_row(clip: DemoClip, listing_k: int) -> PublishedRow:
    tags = list(dict.fromkeys(t for ev in clip.events for t in ev.tags()))
    if clip.source == "soundbible":
        view = f"https://soundbible.com/{clip.source_id}-{_soundbible_slug(clip.title)}.html"
        download = f"https://soundbible.com/grab.php?id={clip.source_id}&type=wav"
        fname = f"{clip.title.lower()}_{listing_k}.wav"  # the published CSV's SoundBible fname shape
    else:
        view = f"https://bigsoundbank.com/detail-{clip.source_id}-{_bigsoundbank_slug(clip.title)}.html"
        download = f"https://bigsoundbank.com/UPLOAD/wav/{clip.source_id}.wav"
        fname = f"{clip.source_id}.wav"
    clip.fname = fname
    # The title names the pattern; the description is one of the varied wordings (SoundBible's start with a space).
    description = (" " if clip.source == "soundbible" else "") + clip.captions[0]
    return PublishedRow(view_link=view, download_link=download, title=clip.title, description=description,
                        fname=fname, tags=repr(tags))


def generate_demo_sounds(out_dir: str | Path, n: int = 300, seed: int = 0) -> Path:
    """Write n clips, their published-format CSV and their captions under out_dir; return the CSV's path.

    Deterministic for a given (n, seed)."""
    out_dir = Path(out_dir)
    audio_dir = out_dir / "audio"
    audio_dir.mkdir(parents=True, exist_ok=True)
    clips = make_clips(n, seed)
    rng = np.random.default_rng(seed + 1)
    rows = []
    # SoundBible lists newest (highest id) first; k is the position in that listing.
    sb_order = {c.id: k for k, c in enumerate(sorted((c for c in clips if c.source == "soundbible"),
                                                     key=lambda c: -int(c.source_id)))}
    for clip in clips:
        rows.append(_published_row(clip, sb_order.get(clip.id, 0)))
        x = synthesize(clip.events, clip.sample_rate, rng)
        if clip.channels == 2:
            x = np.stack([x, x * 0.9], axis=1)
        sf.write(audio_dir / clip.fname, x, clip.sample_rate, subtype="PCM_16")
    csv_path = write_published_csv(out_dir / "demo_sounds.csv", rows)
    captions = {c.id: {"title": c.title, "fname": c.fname, "captions": c.captions,
                       "events": [vars(e) for e in c.events]} for c in clips}
    (out_dir / "captions.json").write_text(json.dumps(captions, indent=1))
    return csv_path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Generate the demo's procedural sounds and their published-format CSV.")
    ap.add_argument("--out", required=True, help="output folder (CSV, captions.json, audio/)")
    ap.add_argument("-n", type=int, default=300, help="number of clips")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    path = generate_demo_sounds(args.out, args.n, args.seed)
    print(f"wrote {args.n} clips: {path} and {Path(args.out) / 'audio'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
