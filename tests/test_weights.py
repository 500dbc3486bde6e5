"""wt5k-weights against a loopback HTTP server (never a real download): resume with Range after a transfer is
cut midway, atomic placement, size and sha256 recorded and re-checked, published checksums enforced, and a
Hugging Face model folder fetched by huggingface_hub's own snapshot_download from a minimal local hub."""
from __future__ import annotations

import hashlib
import json
import re
import threading

import pytest

from crawler.fetch import weights
from crawler.fetch.weights import ChangedFileError, WeightsError, fetch, status
from crawler.fetch.weights_cli import main
from tests.fetch_helpers import payload, server  # noqa: F401  (server: the loopback fixture)


@pytest.fixture
def env(server, tmp_path, monkeypatch, restore_progress_bars):
    """Both hosts point at the loopback server; the cache is a temporary folder."""
    monkeypatch.setenv("WT5K_ZENODO_ENDPOINT", server.url)
    monkeypatch.setenv("WT5K_HF_ENDPOINT", server.url)
    monkeypatch.setenv("WT5K_WEIGHTS_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    return tmp_path / "cache"


def zenodo_stand_in(monkeypatch, body: bytes | None) -> weights.WeightSource:
    """cnn14 (a Zenodo file: the toolkit's own HTTP download) with the md5 and size of ``body`` pinned (None:
    nothing pinned), so that a small stand-in passes its checks."""
    src = weights.SOURCES["cnn14"]
    pins = {"published": {"md5": hashlib.md5(body).hexdigest()}, "size": len(body)} if body else {
        "published": {}, "size": None}
    monkeypatch.setitem(weights.SOURCES, "cnn14", weights.WeightSource(**{**src.__dict__, **pins}))
    return weights.SOURCES["cnn14"]


def test_cut_transfer_resumes_with_range_and_lands_atomically(server, env, capsys, monkeypatch):
    body = payload(300_000)
    src = zenodo_stand_in(monkeypatch, body)
    server.files[src.path] = body
    server.cuts, server.cut_after = 1, 100_000
    assert main(["fetch", "cnn14", "--quiet"]) == 0
    out = capsys.readouterr().out
    target = env / src.filename
    assert target.read_bytes() == body
    assert f"-> {target}" in out and "checked against the published md5" in out
    gets = server.gets(src.path)
    assert len(gets) == 2 and "Range" not in gets[0]
    assert gets[1]["Range"] == "bytes=100000-" and gets[1]["If-Range"] == f'"{hashlib.md5(body).hexdigest()}"'
    assert not list(env.glob("*.part*")), "the partial file and its note are gone once the file is in place"
    assert not list(env.glob(".*.lock")), "no lock file is left behind"
    entry = json.loads((env / "weights.json").read_text())["cnn14"]
    assert entry["size"] == len(body) and entry["sha256"] == hashlib.sha256(body).hexdigest()
    assert entry["url"] == server.url + src.path


def test_hugging_face_file_through_hf_hub_download(server, env, capsys):
    """msclap/LAION files come through huggingface_hub.hf_hub_download (its resume, its cache layout), then are
    checked and recorded like every other file; nothing unchecked is ever under the real name."""
    body = payload(300_000, seed=20)
    src = weights.SOURCES["msclap-2022"]
    server.files[src.path] = body
    server.cuts, server.cut_after = 1, 100_000  # huggingface_hub retries a cut transfer itself
    assert main(["fetch", "msclap-2022", "--quiet"]) == 0
    out = capsys.readouterr().out
    target = env / "CLAP_weights_2022.pth"
    assert target.read_bytes() == body and "measured at first download" in out
    assert len(server.gets(src.path)) == 2
    assert not (env / ".incoming" / src.filename).exists(), "the hub's copy was moved into place once checked"
    assert not list(env.glob(".*.lock"))
    assert {r["name"]: r["state"] for r in status()}["msclap-2022"] == "present"


def test_interrupted_fetch_keeps_part_and_a_later_fetch_continues_it(server, env, monkeypatch):
    body = payload(250_000, seed=1)
    src = zenodo_stand_in(monkeypatch, body)
    server.files[src.path] = body
    server.cuts, server.cut_after = 1, 60_000
    with pytest.raises(WeightsError, match="60000 bytes kept"):
        fetch("cnn14", retries=0, progress=False, log=lambda s: None)
    target = env / src.filename
    assert not target.exists(), "nothing appears under the real name before the file is complete"
    assert (env / (src.filename + ".part")).read_bytes() == body[:60_000]
    assert {r["name"]: r["state"] for r in status()}["cnn14"] == "partial"
    r = fetch("cnn14", retries=0, progress=False, log=lambda s: None)
    assert r.status == "downloaded" and target.read_bytes() == body
    assert server.gets(src.path)[-1]["Range"] == "bytes=60000-"


def test_offline_fetch_says_nothing_was_downloaded_and_leaves_no_lock(env, monkeypatch, capsys):
    """Issue 17: offline, no '0 bytes kept in ....part' about a file that does not exist, and no lock left."""
    src = zenodo_stand_in(monkeypatch, None)
    monkeypatch.setenv("WT5K_ZENODO_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    assert main(["fetch", "cnn14", "--quiet", "--retries", "0"]) == 1
    err = capsys.readouterr().err
    assert "nothing was downloaded" in err and ".part" not in err and len(err.strip().splitlines()) == 1
    assert not (env / (src.filename + ".part")).exists() and not list(env.glob(".*lock"))


def test_server_ignoring_range_or_changed_upstream_restarts_from_zero(server, env, monkeypatch):
    src = zenodo_stand_in(monkeypatch, None)
    old, new = payload(120_000, seed=2), payload(130_000, seed=3)
    server.files[src.path] = old
    server.cuts, server.cut_after = 1, 50_000
    with pytest.raises(WeightsError):
        fetch("cnn14", retries=0, progress=False, log=lambda s: None)
    server.files[src.path] = new  # the published file changed: If-Range no longer matches, the server sends all
    logs = []
    fetch("cnn14", retries=0, progress=False, log=logs.append)
    assert (env / src.filename).read_bytes() == new
    assert any("restarting from byte 0" in line for line in logs)


def test_reuse_checks_the_record_and_reports_a_changed_file(server, env, capsys):
    src = weights.SOURCES["msclap-2022"]
    server.files[src.path] = payload(40_000, seed=4)
    fetch("msclap-2022", progress=False, log=lambda s: None)
    n = len(server.requests)
    r = fetch("msclap-2022", progress=False, log=lambda s: None)
    assert r.status == "present" and len(server.requests) == n, "a checked cached file is not downloaded again"
    target = env / "CLAP_weights_2022.pth"
    data = bytearray(target.read_bytes())
    data[1000] ^= 0xFF  # same size, other content: only the sha256 tells
    target.write_bytes(bytes(data))
    with pytest.raises(ChangedFileError, match="sha256"):
        fetch("msclap-2022", progress=False, log=lambda s: None)
    assert main(["fetch", "msclap-2022", "--quiet"]) == 1
    assert "changed since it was recorded" in capsys.readouterr().err
    rows = {r["name"]: r for r in status(verify=True)}
    assert rows["msclap-2022"]["state"] == "changed"
    assert main(["list"]) == 0  # the size-only listing cannot see a same-size change ...
    assert main(["list", "--verify"]) == 1  # ... the verifying one does
    r = fetch("msclap-2022", force=True, progress=False, log=lambda s: None)
    assert r.status == "downloaded" and target.read_bytes() == server.files[src.path]


def test_published_checksums_are_enforced(server, env, monkeypatch):
    src = weights.SOURCES["cnn14"]
    good = payload(50_000, seed=5)
    assert src.size == 327_428_481  # the real record's; a stand-in of another size is refused for its size alone
    server.files[src.path] = good
    with pytest.raises(WeightsError, match=r"50000 bytes \(unknown bytes [0-9a-f ]+\), published .*: 327428481"):
        fetch("cnn14", progress=False, log=lambda s: None)
    (env / (src.filename + ".rejected")).unlink()
    monkeypatch.setitem(weights.SOURCES, "cnn14", weights.WeightSource(**{
        **src.__dict__, "published": {"md5": hashlib.md5(good).hexdigest()}, "size": len(good)}))
    server.files[src.path] = good[:-1] + b"?"  # a corrupted mirror
    with pytest.raises(WeightsError, match="md5 .* does not match"):
        fetch("cnn14", progress=False, log=lambda s: None)
    assert not (env / src.filename).exists()
    assert (env / (src.filename + ".rejected")).read_bytes() == server.files[src.path]
    server.files[src.path] = good
    r = fetch("cnn14", progress=False, log=lambda s: None)
    assert r.entry["sha256_source"].startswith("measured at first download; checked against the published md5")
    # a Hugging Face-style server announces the sha256 on HEAD (X-Linked-Etag): a mismatch is refused
    hf = weights.SOURCES["laion-clap-630k"]
    server.files[hf.path] = payload(30_000, seed=6)
    server.linked_sha.add(hf.path)
    real = server.files[hf.path]
    server.cuts, server.cut_after = 1, 10_000
    fetch("laion-clap-630k", progress=False, log=lambda s: None)
    entry = weights.read_registry(env)["laion-clap-630k"]
    assert entry["sha256"] == hashlib.sha256(real).hexdigest() and entry["sha256_source"].startswith("published")


def test_a_rejected_download_is_listed_as_rejected_with_its_path(server, env, capsys):
    src = weights.SOURCES["cnn14"]
    server.files[src.path] = payload(30_000, seed=9)  # not the published size: refused, kept for inspection
    with pytest.raises(WeightsError, match="kept as"):
        fetch("cnn14", progress=False, log=lambda s: None)
    rejected = env / (src.filename + ".rejected")
    assert rejected.is_file() and not (env / src.filename).exists()
    row = {r["name"]: r for r in status()}["cnn14"]
    assert row["state"] == "rejected" and row["rejected"] == str(rejected)
    assert main(["list"]) == 0  # like an absent file: nothing recorded has gone wrong
    out = capsys.readouterr().out
    assert re.search(r"cnn14\s+rejected\s", out) and f"rejected download kept as {rejected}" in out
    # a later attempt under way is "partial"; the rejected file is still named
    part = env / (src.filename + ".part")
    part.write_bytes(b"12345")
    row = {r["name"]: r for r in status()}["cnn14"]
    assert row["state"] == "partial" and any(str(rejected) in p for p in row["problems"])
    rejected.unlink()
    part.unlink()
    row = {r["name"]: r for r in status()}["cnn14"]
    assert row["state"] == "absent" and row["rejected"] is None and row["problems"] == []


def test_manual_source_is_explained_then_registered_when_placed(server, env, capsys):
    assert main(["fetch", "htsat-audioset"]) == 1
    err = capsys.readouterr().err
    assert "drive.google.com" in err and "HTSAT_AudioSet_Saved_1.ckpt" in err
    env.mkdir(parents=True, exist_ok=True)
    (env / "HTSAT_AudioSet_Saved_1.ckpt").write_bytes(b"placed by hand")
    assert {r["name"]: r["state"] for r in status()}["htsat-audioset"] == "unrecorded"
    assert main(["fetch", "htsat-audioset"]) == 0
    out = capsys.readouterr().out
    assert "registered" in out and '"audio.htsat_checkpoint"' in out
    rows = {r["name"]: r for r in status()}
    assert rows["htsat-audioset"]["state"] == "present" and rows["cnn14"]["state"] == "absent"
    server.files["/mirror/htsat.ckpt"] = payload(20_000, seed=7)  # --url: a direct link, e.g. a mirror
    assert main(["fetch", "htsat-audioset", "--force", "--quiet", "--url", server.url + "/mirror/htsat.ckpt"]) == 0
    assert (env / "HTSAT_AudioSet_Saved_1.ckpt").read_bytes() == server.files["/mirror/htsat.ckpt"]


def test_http_errors_and_unknown_names_are_clear(server, env, capsys):
    assert main(["fetch", "msclap-2022", "--quiet"]) == 1  # the server has no such file
    assert "HTTP 404" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:  # a usage error: nothing is fetched, exit status 2
        main(["fetch", "cnn14", "no-such-model"])
    assert exit_.value.code == 2 and "unknown weights 'no-such-model'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["fetch", "cnn14", "--endpoint", "nohost"])
    capsys.readouterr()
    # 'all': every direct download is tried (one failing does not stop the others); the manual one is left out
    assert main(["fetch", "all", "--quiet"]) == 1
    err = capsys.readouterr().err.splitlines()
    direct = [n for n, s in weights.SOURCES.items() if s.kind != "manual"]
    assert sorted(line.split(":")[1].strip() for line in err) == sorted(direct)
    assert not any("htsat-audioset" in line for line in err)


def test_dir_option_and_list_output(server, env, tmp_path, capsys):
    src = weights.SOURCES["msclap-2022"]
    server.files[src.path] = payload(10_000, seed=8)
    other = tmp_path / "data" / "pretrained"
    assert main(["fetch", "msclap-2022", "--dir", str(other), "--quiet"]) == 0
    assert (other / src.filename).is_file() and not env.exists()
    capsys.readouterr()
    assert main(["list", "--dir", str(other)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"msclap-2022\s+present\s+0\.0 MB", out) and re.search(r"msclap-2023\s+absent", out)
    (other / src.filename).unlink()
    assert main(["list", "--dir", str(other)]) == 1
    assert re.search(r"msclap-2022\s+missing", capsys.readouterr().out)


def test_hf_model_folder_through_snapshot_download(server, env):
    files = {"config.json": b'{"model_type": "roberta"}', "vocab.json": b"{}", "merges.txt": b"#version",
             "model.safetensors": payload(5_000, seed=9), "tf_model.h5": b"not wanted"}
    server.repos["FacebookAI/roberta-base"] = files
    r = fetch("roberta-base", progress=False, log=lambda s: None)
    assert r.path == env / "roberta-base" and r.status == "downloaded"
    assert {k: (r.path / k).read_bytes() for k in r.entry["files"]} == {
        k: v for k, v in files.items() if k != "tf_model.h5"}
    assert r.entry["files"]["model.safetensors"]["sha256"] == hashlib.sha256(files["model.safetensors"]).hexdigest()
    n = len(server.requests)
    assert fetch("roberta-base", progress=False, log=lambda s: None).status == "present"
    assert len(server.requests) == n
    (r.path / "vocab.json").write_bytes(b'{"a": 1}')
    with pytest.raises(ChangedFileError, match="vocab.json"):
        fetch("roberta-base", progress=False, log=lambda s: None)


def test_resume_against_werkzeug_send_file(env, tmp_path):
    """The same cut-and-resume against a file server no one here wrote: werkzeug's send_file (Range, If-Range,
    ETag as its maintainers implement them), behind a middleware that breaks the first transfer midway."""
    pytest.importorskip("werkzeug")
    from werkzeug.serving import make_server
    from werkzeug.utils import send_file
    from werkzeug.wrappers import Request

    body = payload(700_000, seed=10)
    (tmp_path / "served").mkdir()
    (tmp_path / "served" / "CLAP_weights_2022.pth").write_bytes(body)
    seen = []

    def app(environ, start_response):
        req = Request(environ)
        seen.append((req.method, req.headers.get("Range")))
        return send_file(str(tmp_path / "served" / "CLAP_weights_2022.pth"), environ, conditional=True)(
            environ, start_response)

    def cutting(environ, start_response):  # the first GET stops after 200 kB: the connection just ends
        it = app(environ, start_response)
        if environ["REQUEST_METHOD"] != "GET" or sum(m == "GET" for m, _ in seen) > 1:
            return it

        def cut():
            sent = 0
            for chunk in it:
                if sent + len(chunk) > 200_000:
                    yield chunk[:200_000 - sent]
                    raise ConnectionAbortedError("cut")
                sent += len(chunk)
                yield chunk
        return cut()

    httpd = make_server("127.0.0.1", 0, cutting, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        r = fetch("msclap-2022", url=f"http://127.0.0.1:{httpd.port}/file", progress=False, log=lambda s: None)
    finally:
        httpd.shutdown()
    assert r.path.read_bytes() == body
    gets = [rng for m, rng in seen if m == "GET"]
    assert gets[0] is None and re.fullmatch(r"bytes=\d+-", gets[1]) and int(gets[1][6:-1]) > 0



def test_redirects_to_a_storage_host(server, env, monkeypatch):
    """Hugging Face's way: a 302 carrying X-Linked-Etag (sha256) and X-Linked-Size, the file on another host
    path; a cut transfer resumes through the redirect (Range is forwarded); bytes that do not match the
    announced sha256 are refused. Zenodo's way: a plain redirect, whose page length is not the file's size."""
    src = weights.SOURCES["laion-clap-630k-fusion"]
    body = payload(90_000, seed=11)
    server.files["/cdn/blob"] = body
    server.redirects[src.path] = "/cdn/blob"
    server.linked_sha.add(src.path)
    server.cuts, server.cut_after = 1, 30_000
    r = fetch("laion-clap-630k-fusion", progress=False, log=lambda s: None)
    assert r.path.read_bytes() == body and r.entry["sha256_source"].startswith("published (announced by the hub")
    assert len(server.gets("/cdn/blob")) == 2  # the cut transfer was taken up again by huggingface_hub

    other = weights.SOURCES["laion-clap-630k-audioset-fusion"]
    server.files["/cdn/other"] = payload(90_000, seed=12)
    server.redirects[other.path] = "/cdn/other"
    server.linked_sha.add(other.path)
    server.announced[other.path] = body  # the hub announces one file, the storage host serves another
    with pytest.raises(WeightsError, match="sha256 .* does not match"):
        fetch("laion-clap-630k-audioset-fusion", progress=False, log=lambda s: None)
    assert not (env / other.filename).exists() and (env / (other.filename + ".rejected")).is_file()
    assert "laion-clap-630k-audioset-fusion" not in weights.read_registry(env)

    zen = weights.SOURCES["cnn14"]
    content = payload(70_000, seed=13)
    monkeypatch.setitem(weights.SOURCES, "cnn14", weights.WeightSource(**{
        **zen.__dict__, "published": {"md5": hashlib.md5(content).hexdigest()}, "size": len(content)}))
    server.files["/zenodo/content"] = content
    server.redirects[zen.path] = "/zenodo/content"
    assert fetch("cnn14", progress=False, log=lambda s: None).path.read_bytes() == content


def test_concurrent_fetches_of_one_name_download_once(server, env):
    src = weights.SOURCES["msclap-2023"]
    server.files[src.path] = payload(50_000, seed=14)
    server.delay = 0.5  # both fetches would be mid-transfer together without the lock
    start, results = threading.Barrier(2), []

    def one():
        start.wait()
        results.append(fetch("msclap-2023", progress=False, log=lambda s: None).status)

    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results) == ["downloaded", "present"] and len(server.gets(src.path)) == 1
    assert (env / src.filename).read_bytes() == server.files[src.path]


def test_redirects_only_to_the_expected_hosts(server, env, monkeypatch):
    """Issue 21: a redirect off the host's known hosts (here: another name of the loopback machine, standing
    for an internal address) is refused before any byte of the file is fetched, for a Zenodo file (the
    toolkit's download) and a Hugging Face file (checked on the hub's redirect before hf_hub_download runs)."""
    elsewhere = f"http://localhost:{server.httpd.server_port}"
    body = payload(20_000, seed=30)
    server.files["/internal/file"] = body
    zen = zenodo_stand_in(monkeypatch, body)
    server.redirects[zen.path] = elsewhere + "/internal/file"
    with pytest.raises(WeightsError, match="redirected to http://localhost.*not one of the allowed hosts"):
        fetch("cnn14", progress=False, log=lambda s: None)
    hf = weights.SOURCES["msclap-2023"]
    server.redirects[hf.path] = elsewhere + "/internal/file"
    with pytest.raises(WeightsError, match="redirects to http://localhost.*not one of the allowed hosts"):
        fetch("msclap-2023", progress=False, log=lambda s: None)
    assert not server.gets("/internal/file") and not list(env.glob("*.p*"))


def test_bodies_over_the_cap_are_refused(server, env, monkeypatch):
    """Issue 21: a Hugging Face file announcing more than its cap is refused before download; a Zenodo body
    longer than its pinned size is cut off at that size and refused."""
    hf = weights.SOURCES["laion-clap-630k"]
    monkeypatch.setitem(weights.SOURCES, hf.name, weights.WeightSource(**{**hf.__dict__, "max_size": 1000}))
    server.files[hf.path] = payload(5_000, seed=31)
    server.linked_sha.add(hf.path)
    with pytest.raises(WeightsError, match="over the cap of 1000"):
        fetch(hf.name, progress=False, log=lambda s: None)
    assert not server.gets(hf.path)
    zen = zenodo_stand_in(monkeypatch, payload(1_000, seed=32))
    server.files[zen.path] = payload(50_000, seed=32)
    with pytest.raises(WeightsError, match="over the cap of 1000"):
        fetch("cnn14", progress=False, log=lambda s: None)
    assert not (env / zen.filename).exists()
