"""`wt5k-search serve`: a local page to search an index and listen to the results, and the JSON API behind it
(documented in search/README.md).

Starlette + uvicorn: an ASGI app of a few routes needs no more (FastAPI would add pydantic and an OpenAPI layer
the page does not use; Gradio would bring its own front end and a much larger dependency tree). Starlette
serves files with HTTP Range (browsers seek audio with it) and runs the blocking model calls in a thread pool.

Safe by default: it listens on 127.0.0.1 and answers only requests naming a loopback host (no DNS rebinding);
audio and pictures are served by indexed id only, never from a path in the request; query, label and upload
sizes are bounded; an upload is decoded in memory and never written to disk.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Protocol, Sequence
from urllib.parse import quote

import numpy as np
import soundfile as sf
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from manifests.atomic import atomic_path
from manifests.audio_formats import sample_rate_problem
from search.index import MAX_FRAMES_PER_BYTE, AudioIndex, Hit, classify
from training.zeroshot import DEFAULT_TEMPLATE, label_embeddings

STATIC = Path(__file__).with_name("static")
MAX_QUERY_CHARS = 500
MAX_K = 100
MAX_UPLOAD_BYTES = 20 * 2**20
MAX_UPLOAD_SECONDS = 600
MAX_LABELS, MAX_LABEL_CHARS, MAX_CLASSIFY_IDS, MAX_TEMPLATES = 50, 100, MAX_K, 10
UPLOAD_TYPES = ("audio/", "video/ogg", "application/ogg", "application/octet-stream")
LOOPBACK_HOSTS = ("127.0.0.1", "localhost")
PICTURE_SECONDS = 30  # a picture shows the first 30 s of a sound
# what browsers play as served; other formats (AIFF, AU, CAF, W64...) are sent as FLAC made once and cached
PLAYABLE = {".wav": "audio/wav", ".flac": "audio/flac", ".ogg": "audio/ogg", ".oga": "audio/ogg",
            ".opus": "audio/ogg", ".mp3": "audio/mpeg"}
SECURITY_HEADERS = {"Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; "
                                               "object-src 'none'; frame-ancestors 'none'",
                    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


class ModelForServing(Protocol):
    """What the server needs of a model (training.inference.Embedder implements it)."""
    logit_scale: float

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_audio(self, waveforms: Sequence[np.ndarray], sample_rate: int) -> np.ndarray: ...


class RequestError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class SearchService:
    """The page's answers, without HTTP: text, similar, upload and classify queries over one loaded index and
    model, the audio file of an id and its picture. Thread-safe: model calls take turns (tokenizers are not
    thread-safe), array and item reads run in parallel."""

    def __init__(self, index: AudioIndex, model: ModelForServing, cache_dir: str | os.PathLike | None = None):
        self.index, self.model = index, model
        self._model_lock = threading.Lock()
        self._text_cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self.cache_dir = Path(cache_dir) if cache_dir else Path(tempfile.mkdtemp(prefix="wt5k-search-"))
        self.cache_dir.mkdir(parents=True, exist_ok=True)

    # --- queries --------------------------------------------------------------------------------------------
    def text(self, query: str, k: int) -> list[dict]:
        query = (query or "").strip()
        if not query:
            raise RequestError(400, "give a description to search for (q)")
        if len(query) > MAX_QUERY_CHARS:
            raise RequestError(413, f"the query is {len(query)} characters long; at most {MAX_QUERY_CHARS}")
        return self._results(self.index.search_audio(self._text_embedding(query), _k(k)))

    def similar(self, item_id: str, k: int) -> list[dict]:
        pos = self._position(item_id)
        return self._results(self.index.similar_audio(np.array(self.index.audio[pos]), _k(k), exclude_id=item_id))

    def upload(self, data: bytes, k: int) -> list[dict]:
        x, sr = decode_upload(data)
        with self._model_lock:
            emb = self.model.embed_audio([x], sr)[0]
        return self._results(self.index.similar_audio(emb, _k(k)))

    def classify(self, ids: Sequence[str], labels: Sequence[str], templates: Sequence[str]) -> list[dict]:
        labels = [str(lb).strip() for lb in labels if str(lb).strip()]
        templates = [str(t) for t in templates if str(t).strip()] or [DEFAULT_TEMPLATE]
        if not labels:
            raise RequestError(400, "give labels to classify by")
        if len(labels) > MAX_LABELS or any(len(lb) > MAX_LABEL_CHARS for lb in labels):
            raise RequestError(413, f"at most {MAX_LABELS} labels of {MAX_LABEL_CHARS} characters")
        if len(templates) > MAX_TEMPLATES or any(len(t) > MAX_QUERY_CHARS for t in templates):
            raise RequestError(413, f"at most {MAX_TEMPLATES} templates of {MAX_QUERY_CHARS} characters")
        if not ids or len(ids) > MAX_CLASSIFY_IDS:
            raise RequestError(400 if not ids else 413, f"give 1 to {MAX_CLASSIFY_IDS} ids to classify")
        audio = np.stack([np.array(self.index.audio[self._position(str(i))]) for i in ids])
        try:
            with self._model_lock:
                text = label_embeddings(self.model.embed_texts, labels, templates)
        except ValueError as e:  # a template without '{}'
            raise RequestError(400, str(e)) from None
        probs = classify(audio, text, self.model.logit_scale)
        return [{"id": str(i), "labels": [{"label": labels[j], "probability": round(float(p[j]), 6)}
                                          for j in np.argsort(-p, kind="stable")]}
                for i, p in zip(ids, probs)]

    def info(self) -> dict:
        m = self.index.meta
        return {"n_items": len(self.index), "n_captions": self.index.n_captions, "dim": self.index.dim,
                "checkpoint": Path(m.get("checkpoint") or "?").name, "source": Path(m.get("source") or "?").name,
                "limits": {"max_query_chars": MAX_QUERY_CHARS, "max_k": MAX_K, "max_upload_bytes": MAX_UPLOAD_BYTES,
                           "max_upload_seconds": MAX_UPLOAD_SECONDS, "max_labels": MAX_LABELS}}

    # --- files of an id -------------------------------------------------------------------------------------
    def audio_file(self, item_id: str) -> tuple[Path, str]:
        """(file, media type) to send for an indexed id: its own file when browsers play the format, else a
        FLAC copy made once in the cache."""
        path = self._file(item_id)
        media = PLAYABLE.get(path.suffix.lower())
        if media:
            return path, media
        out = self.cache_dir / f"{_key(item_id, path)}.flac"
        if not out.is_file():
            x, sr = sf.read(str(path), dtype="float32", always_2d=True)
            with atomic_path(out) as tmp:
                sf.write(str(tmp), x, sr, format="FLAC")
        return out, "audio/flac"

    def picture(self, item_id: str) -> Path:
        """A PNG of the sound (waveform envelope over a spectrogram), made once and cached."""
        path = self._file(item_id)
        out = self.cache_dir / f"{_key(item_id, path)}.png"
        if not out.is_file():
            png = render_picture(path)
            with atomic_path(out) as tmp:
                tmp.write_bytes(png)
        return out

    # --- helpers --------------------------------------------------------------------------------------------
    def _position(self, item_id: str) -> int:
        if not item_id or len(item_id) > 4096:
            raise RequestError(404, "no such item")
        try:
            return self.index.position(item_id)
        except KeyError:
            raise RequestError(404, f"no item with id {item_id!r} in the index") from None

    def _file(self, item_id: str) -> Path:
        path = Path(self.index.items[self._position(item_id)]["path"])
        if not path.is_file():
            raise RequestError(404, f"the audio file of {item_id!r} is no longer where the index found it")
        return path

    def _text_embedding(self, query: str) -> np.ndarray:
        with self._model_lock:
            if query in self._text_cache:
                self._text_cache.move_to_end(query)
                return self._text_cache[query]
            emb = self.model.embed_texts([query])[0]
            self._text_cache[query] = emb
            if len(self._text_cache) > 256:
                self._text_cache.popitem(last=False)
            return emb

    def _results(self, hits: list[Hit]) -> list[dict]:
        out = []
        for h in hits:
            q = quote(h.id, safe="")
            out.append({"rank": h.rank, "id": h.id, "score": round(h.score, 6),
                        "caption": h.text or Path(h.path).stem, "file": Path(h.path).name,
                        "audio_url": f"/api/audio?id={q}", "picture_url": f"/api/picture?id={q}",
                        "similar_url": f"/api/similar?id={q}"})
        return out


def _k(k: int) -> int:
    if not 1 <= k <= MAX_K:
        raise RequestError(400, f"k must be between 1 and {MAX_K}")
    return k


def _key(item_id: str, path: Path) -> str:
    """A cache name for an item's derived files: changes when the file does."""
    st = path.stat()
    return hashlib.sha256(f"{item_id}\0{path}\0{st.st_size}\0{st.st_mtime_ns}".encode()).hexdigest()[:32]


def decode_upload(data: bytes) -> tuple[np.ndarray, int]:
    """Decode an uploaded sound in memory: (mono float32, rate); RequestError 415 for what is not audio, 413 for
    more audio than allowed (checked on the header before decoding)."""
    if not data:
        raise RequestError(400, "the upload is empty")
    try:
        info = sf.info(io.BytesIO(data))
    except (sf.LibsndfileError, RuntimeError, TypeError):
        raise RequestError(415, "not an audio file this server decodes (WAV, FLAC, Ogg, MP3, AIFF, ...)") from None
    problem = sample_rate_problem(info.samplerate)
    if problem:
        raise RequestError(415, f"sample rate {problem}")
    if info.frames > MAX_FRAMES_PER_BYTE * len(data):
        raise RequestError(415, f"the header claims {info.frames:,} frames in {len(data):,} bytes (damaged)")
    if info.frames > MAX_UPLOAD_SECONDS * info.samplerate:
        raise RequestError(413, f"the sound lasts {info.frames / info.samplerate:.0f} s; at most {MAX_UPLOAD_SECONDS} s")
    try:
        x, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as e:
        raise RequestError(415, f"the sound cannot be decoded: {e}") from None
    x = x.mean(axis=1)
    if len(x) == 0 or not np.all(np.isfinite(x)):
        raise RequestError(415, "the sound holds no samples, or samples that are not finite")
    return x, sr


def render_picture(path: Path, width: int = 600, wave_h: int = 40, spec_h: int = 100) -> bytes:
    """PNG bytes: the waveform's envelope above a log-magnitude, log-frequency spectrogram of the first
    PICTURE_SECONDS of a sound."""
    from matplotlib import colormaps
    from matplotlib.image import imsave

    with sf.SoundFile(str(path)) as f:
        sr = f.samplerate
        x = f.read(min(f.frames, PICTURE_SECONDS * sr) if f.frames > 0 else PICTURE_SECONDS * sr,
                   dtype="float32", always_2d=True).mean(axis=1)
    if len(x) < 2:
        x = np.zeros(2048, dtype=np.float32)
    n_fft = 1024
    hop = max(1, (max(len(x), n_fft) - n_fft) // (width - 1) or 1)
    padded = np.pad(x, (0, max(0, n_fft + hop * (width - 1) - len(x))))
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop][:width] * np.hanning(n_fft)
    db = 20 * np.log10(np.abs(np.fft.rfft(frames, axis=1)).T + 1e-6)  # [freq, time]
    db = np.clip((db - (db.max() - 80)) / 80, 0, 1)  # an 80 dB range below the loudest bin
    # a log-frequency axis (40 Hz to Nyquist, high at the top): sweeps and pitches show as they sound
    rows = np.minimum(np.round(np.geomspace(40, sr / 2, spec_h) * n_fft / sr), db.shape[0] - 1).astype(int)[::-1]
    spec = colormaps["magma"](db[rows][:, : width])[..., :3]
    spec = np.pad(spec, ((0, 0), (0, width - spec.shape[1]), (0, 0)))
    # envelope: min and max of each column's stretch of samples
    wave = np.full((wave_h, width, 3), 0.12)
    edges = np.linspace(0, len(x), width + 1).astype(int)
    peak = max(float(np.abs(x).max()), 1e-9)
    for c in range(width):
        seg = x[edges[c]:max(edges[c + 1], edges[c] + 1)] / peak
        lo, hi = (int((1 - v) / 2 * (wave_h - 1)) for v in (seg.max(), seg.min()))
        wave[lo:hi + 1, c] = (0.45, 0.75, 1.0)
    buf = io.BytesIO()
    imsave(buf, np.concatenate([wave, spec]), format="png")
    return buf.getvalue()


# --- HTTP -------------------------------------------------------------------------------------------------------
def _int(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    try:
        return default if raw is None else int(raw)
    except ValueError:
        raise RequestError(400, f"{name} must be an integer, got {raw[:20]!r}") from None


def _timed(payload: dict, t0: float) -> Response:
    """JSON with the time the server spent on it (Server-Timing: what `make bench` and browsers' tools read)."""
    return JSONResponse(payload, headers={"Server-Timing": f"app;dur={1000 * (time.perf_counter() - t0):.2f}"})


def create_app(service: SearchService, allowed_hosts: Sequence[str] | None = LOOPBACK_HOSTS) -> Starlette:
    """The page and the API over a SearchService. ``allowed_hosts``: Host headers answered (None: any)."""

    async def page(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8", headers=SECURITY_HEADERS)

    async def script(request: Request) -> Response:
        return FileResponse(STATIC / "app.js", media_type="text/javascript; charset=utf-8", headers=SECURITY_HEADERS)

    def info(request: Request) -> Response:
        return JSONResponse(service.info())

    def search(request: Request) -> Response:
        t0 = time.perf_counter()
        results = service.text(request.query_params.get("q", ""), _int(request, "k", 10))
        return _timed({"query": request.query_params.get("q", ""), "results": results}, t0)

    def similar(request: Request) -> Response:
        t0 = time.perf_counter()
        item_id = request.query_params.get("id", "")
        return _timed({"id": item_id, "results": service.similar(item_id, _int(request, "k", 10))}, t0)

    async def upload(request: Request) -> Response:
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype and not ctype.startswith(UPLOAD_TYPES):
            raise RequestError(415, f"send the sound file itself as the body (audio/*), not {ctype}")
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > MAX_UPLOAD_BYTES:
            raise RequestError(413, f"the upload is {int(declared):,} bytes; at most {MAX_UPLOAD_BYTES:,}")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_UPLOAD_BYTES:
                raise RequestError(413, f"the upload is over {MAX_UPLOAD_BYTES:,} bytes")
        results = await run_in_threadpool(service.upload, bytes(body), _int(request, "k", 10))
        return JSONResponse({"results": results})

    async def classify_route(request: Request) -> Response:
        raw = await request.body()
        if len(raw) > 64 * 1024:
            raise RequestError(413, "the request is over 64 KiB")
        try:
            body = json.loads(raw or b"{}")
            labels = body.get("labels") or []
            labels = labels.split(",") if isinstance(labels, str) else list(labels)
            templates = body.get("templates") or ([body["template"]] if body.get("template") else [])
            ids = [str(i) for i in body.get("ids") or []]
        except (ValueError, AttributeError, TypeError):
            raise RequestError(400, 'send JSON: {"ids": [...], "labels": [...], "templates": [...]}') from None
        return JSONResponse({"labels": [str(lb).strip() for lb in labels if str(lb).strip()],
                             "results": await run_in_threadpool(service.classify, ids, labels, templates)})

    def audio(request: Request) -> Response:
        path, media = service.audio_file(request.query_params.get("id", ""))
        return FileResponse(path, media_type=media, headers={"Cache-Control": "private, max-age=3600"})

    def picture(request: Request) -> Response:
        return FileResponse(service.picture(request.query_params.get("id", "")), media_type="image/png",
                            headers={"Cache-Control": "private, max-age=3600"})

    async def on_error(request: Request, exc: Exception) -> Response:
        if isinstance(exc, RequestError):
            return JSONResponse({"error": str(exc)}, status_code=exc.status)
        if isinstance(exc, (ValueError, OSError, sf.LibsndfileError)):  # an item's file that cannot be read
            return JSONResponse({"error": str(exc)}, status_code=422)
        return JSONResponse({"error": "not found"}, status_code=404)  # HTTPException: 404 / 405

    routes = [Route("/", page), Route("/app.js", script), Route("/api/info", info), Route("/api/search", search),
              Route("/api/similar", similar), Route("/api/upload", upload, methods=["POST"]),
              Route("/api/classify", classify_route, methods=["POST"]), Route("/api/audio", audio),
              Route("/api/picture", picture)]
    middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))] if allowed_hosts else []
    return Starlette(routes=routes, middleware=middleware,
                     exception_handlers={RequestError: on_error, ValueError: on_error, OSError: on_error,
                                         sf.LibsndfileError: on_error, HTTPException: on_error})


def serve(index_dir: str | os.PathLike, model: ModelForServing, host: str = "127.0.0.1", port: int = 8000,
          log_level: str = "info") -> None:
    """Load the index, serve the page until interrupted (Ctrl-C)."""
    import uvicorn

    index = AudioIndex.load(index_dir)
    cache: Path | None = Path(index_dir) / "pictures"  # replaced with the folder when the index is rebuilt
    try:
        cache.mkdir(exist_ok=True)
        tempfile.TemporaryFile(dir=cache).close()
    except OSError:  # a read-only index folder: a cache for this run only
        cache = None
    service = SearchService(index, model, cache)
    loopback = host in LOOPBACK_HOSTS or host.startswith("127.")
    app = create_app(service, allowed_hosts=[*LOOPBACK_HOSTS, host] if loopback else None)
    if not loopback:
        print(f"warning: listening on {host}: anyone who reaches this address can search and listen to the "
              "indexed sounds", flush=True)
    print(f"serving {len(index)} sounds of {index_dir}: open http://{'127.0.0.1' if host == '0.0.0.0' else host}:"
          f"{port}/  (Ctrl-C stops)", flush=True)
    uvicorn.run(app, host=host, port=port, log_level=log_level)
