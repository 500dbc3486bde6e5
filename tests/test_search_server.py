"""`wt5k-search serve`: the JSON API over a tone index with a model of known embeddings, its safety limits, HTTP
Range, and a real uvicorn server under 50 concurrent requests."""
import io
import json
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

import httpx
import numpy as np
import pytest
import soundfile as sf
from starlette.testclient import TestClient

import search.server as server
from search.server import SearchService, create_app
from tests.search_helpers import RATE, ToneModel, running_server, tone_index


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serve")
    folder, _, index = tone_index(tmp)
    model = ToneModel()
    service = SearchService(index, model, tmp / "cache")
    return folder, index, model, service, create_app(service)


@pytest.fixture()
def client(served):
    return TestClient(served[4], base_url="http://127.0.0.1:8000")


def _tone(freq, seconds=0.5, rate=RATE, fmt="WAV"):
    buf = io.BytesIO()
    t = np.arange(int(rate * seconds)) / rate
    sf.write(buf, 0.3 * np.sin(2 * np.pi * freq * t), rate, format=fmt)
    return buf.getvalue()


def test_text_query_similar_and_classify(client, served):
    _, index, model, _, _ = served
    r = client.get("/api/search", params={"q": "a tone at 800 Hz", "k": 3})
    assert r.status_code == 200
    results = r.json()["results"]
    assert [h["rank"] for h in results] == [1, 2, 3] and results[0]["id"] == "sub/tone800.ogg"
    top = results[0]
    assert set(top) >= {"id", "score", "caption", "audio_url", "picture_url", "similar_url", "file"}
    assert top["score"] == pytest.approx(1.0, abs=1e-4) and top["caption"] == "tone800"  # a folder: the file name
    assert top["audio_url"] == "/api/audio?id=sub%2Ftone800.ogg" and "path" not in top
    calls = model.text_calls
    assert client.get("/api/search", params={"q": "a tone at 800 Hz", "k": 3}).json()["results"] == results
    assert model.text_calls == calls  # the same query again: its embedding is cached

    sim = client.get(top["similar_url"] + "&k=10").json()["results"]
    assert len(sim) == 5 and "sub/tone800.ogg" not in [h["id"] for h in sim]  # the item itself left out

    body = {"ids": ["tone200.wav", "tone1600.wav"], "labels": ["200 Hz", "1600 Hz", "6400 Hz"],
            "templates": ["a {} tone", "the sound of {}"]}
    got = client.post("/api/classify", json=body).json()
    assert got["labels"] == body["labels"]
    for res, want in zip(got["results"], ["200 Hz", "1600 Hz"]):
        p = [x["probability"] for x in res["labels"]]
        assert res["labels"][0]["label"] == want and sum(p) == pytest.approx(1, abs=1e-4) and p == sorted(p)[::-1]
    # the page sends labels as one comma-separated string too
    assert client.post("/api/classify", json={"ids": ["tone200.wav"], "labels": "200 Hz, 400 Hz"}).status_code == 200


@pytest.mark.parametrize("request_, status", [
    (("get", "/api/search", {"q": "x" * 501}), 413), (("get", "/api/search", {"q": "  "}), 400),
    (("get", "/api/search", {"q": "dog", "k": 0}), 400), (("get", "/api/search", {"q": "dog", "k": 101}), 400),
    (("get", "/api/search", {"q": "dog", "k": "ten"}), 400), (("get", "/api/similar", {"id": "nope"}), 404),
    (("post", "/api/classify", {"ids": ["tone200.wav"], "labels": ["x"] * 51}), 413),
    (("post", "/api/classify", {"ids": ["tone200.wav"], "labels": ["dog"], "templates": ["no slot"]}), 400),
    (("post", "/api/classify", {"ids": ["nope"], "labels": ["dog"]}), 404),
    (("post", "/api/classify", {"ids": [], "labels": ["dog"]}), 400)])
def test_bad_requests_get_a_status_and_a_message(client, request_, status):
    method, url, params = request_
    r = client.get(url, params=params) if method == "get" else client.post(url, json=params)
    assert r.status_code == status and r.json()["error"]


def test_audio_and_pictures_by_id_only_with_http_range(client, served, monkeypatch):
    folder, index, _, service, _ = served
    wav = (folder / "tone200.wav").read_bytes()
    r = client.get("/api/audio?id=tone200.wav")
    assert r.status_code == 200 and r.content == wav and r.headers["content-type"] == "audio/wav"
    r = client.get("/api/audio?id=tone200.wav", headers={"Range": "bytes=100-199"})
    assert r.status_code == 206 and r.content == wav[100:200]
    assert r.headers["content-range"] == f"bytes 100-199/{len(wav)}"
    # AIFF, which browsers do not play: sent as FLAC holding the same samples
    r = client.get("/api/audio?id=tone3200.aiff")
    assert r.headers["content-type"] == "audio/flac"
    x, _ = sf.read(io.BytesIO(r.content))
    y, _ = sf.read(folder / "tone3200.aiff")
    assert np.allclose(x, y, atol=1e-4)

    secret = folder.parent / "secret.txt"
    secret.write_text("do not serve")
    for bad in ["../secret.txt", str(secret), quote(str(secret), safe=""), "..%2Fsecret.txt", "%2e%2e/secret.txt",
                "tone200.wav/../../secret.txt", "", "sub/../tone200.wav", "sub%2ftone800.ogg%00"]:
        for route in ("/api/audio?id=", "/api/picture?id="):
            r = client.get(route + bad)
            assert r.status_code == 404 and b"do not serve" not in r.content, (route, bad)
    for url in ["/api/audio/../../secret.txt", "/../secret.txt", "/static/../secret.txt", "/app.js/../../secret.txt"]:
        r = client.get(url)
        assert r.status_code == 404 and b"do not serve" not in r.content, url

    renders = []
    real = server.render_picture
    monkeypatch.setattr(server, "render_picture", lambda p: renders.append(p) or real(p))
    for _ in range(2):
        r = client.get("/api/picture?id=sub%2Ftone800.ogg")
        assert r.status_code == 200 and r.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(renders) == 1  # made once, then served from the cache
    from matplotlib.image import imread

    assert imread(io.BytesIO(r.content)).shape[:2] == (140, 600)


def test_upload_is_decoded_in_memory_and_bounded(client, served, monkeypatch, tmp_path):
    import tempfile

    folder, _, _, service, _ = served
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # anything spooled to a temporary file lands here
    before = sorted(p.name for p in service.cache_dir.iterdir())
    r = client.post("/api/upload?k=2", content=_tone(1600), headers={"Content-Type": "audio/wav"})
    assert r.status_code == 200 and r.json()["results"][0]["id"] == "tone1600.wav"
    r = client.post("/api/upload", content=_tone(400, fmt="FLAC"), headers={"Content-Type": "application/octet-stream"})
    assert r.json()["results"][0]["id"] == "tone400.flac"
    assert sorted(p.name for p in service.cache_dir.iterdir()) == before and list(tmp_path.iterdir()) == []

    cases = [(b"<html>not audio</html>", "audio/wav", 415), (_tone(400), "text/html", 415), (b"", "audio/wav", 400),
             (_tone(400, rate=1000), "audio/wav", 415)]
    for data, ctype, status in cases:
        r = client.post("/api/upload", content=data, headers={"Content-Type": ctype})
        assert r.status_code == status and r.json()["error"], (ctype, status)
    monkeypatch.setattr(server, "MAX_UPLOAD_SECONDS", 1)
    r = client.post("/api/upload", content=_tone(400, seconds=2), headers={"Content-Type": "audio/wav"})
    assert r.status_code == 413 and "at most 1 s" in r.json()["error"]
    monkeypatch.setattr(server, "MAX_UPLOAD_BYTES", 1000)
    r = client.post("/api/upload", content=_tone(400), headers={"Content-Type": "audio/wav"})
    assert r.status_code == 413

    def chunks():  # no Content-Length: counted while it streams in
        for _ in range(10):
            yield b"\0" * 500

    r = client.post("/api/upload", content=chunks(), headers={"Content-Type": "audio/wav"})
    assert r.status_code == 413


def test_only_loopback_host_names_are_answered(served):
    app = served[4]
    assert TestClient(app, base_url="http://localhost:8000").get("/api/info").json()["n_items"] == 6
    assert TestClient(app, base_url="http://attacker.example").get("/api/info").status_code == 400  # DNS rebinding


def test_a_real_server_answers_50_concurrent_requests(served):
    app = served[4]
    with running_server(app) as base:
        page = httpx.get(base + "/")
        assert page.status_code == 200 and "<script src=\"/app.js\">" in page.text
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assert httpx.get(base + "/app.js").status_code == 200
        urls = [f"/api/search?q=tone+{f}+Hz&k=5" for f in (200, 400, 800, 1600, 3200)] + \
               ["/api/similar?id=tone400.flac", "/api/picture?id=tone6400.flac", "/api/audio?id=tone1600.wav",
                "/api/info", "/api/search?q=a+sound"]

        def fetch(i):
            with httpx.Client(base_url=base, timeout=60) as c:
                r = c.get(urls[i % len(urls)], headers={"Range": "bytes=0-9"} if "audio" in urls[i % len(urls)] else {})
                return r.status_code, urls[i % len(urls)], r.content

        with ThreadPoolExecutor(50) as pool:
            answers = list(pool.map(fetch, range(50)))
    assert all(status in (200, 206) for status, _, _ in answers), [(s, u) for s, u, _ in answers if s >= 300]
    first = {u: c for _, u, c in answers if u.startswith("/api/search")}
    for s, u, c in answers:  # concurrent answers are the answers a lone request gets
        if u.startswith("/api/search"):
            assert json.loads(c) == json.loads(first[u])


def test_an_indexed_file_damaged_or_gone_since_indexing_gets_a_message(tmp_path):
    folder, _, index = tone_index(tmp_path)
    client = TestClient(create_app(SearchService(index, ToneModel(), tmp_path / "cache")),
                        base_url="http://127.0.0.1:8000")
    (folder / "tone3200.aiff").write_bytes(b"garbage, no longer audio")
    (folder / "tone200.wav").unlink()
    for url in ("/api/picture?id=tone3200.aiff", "/api/audio?id=tone3200.aiff"):
        r = client.get(url)
        assert r.status_code == 422 and "tone3200.aiff" in r.json()["error"], url
    r = client.get("/api/audio?id=tone200.wav")
    assert r.status_code == 404 and "no longer where the index found it" in r.json()["error"]
