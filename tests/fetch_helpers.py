"""Loopback servers for the fetch tests (wt5k-weights, wt5k-fetch): a file server with Range/If-Range, HEAD,
redirects, cut transfers and the bits of the Hugging Face hub API that huggingface_hub calls."""
from __future__ import annotations

import hashlib
import http.server
import json
import re
import threading
import time

import pytest

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class Server:
    """Files by URL path, with Range/If-Range, HEAD (optionally Hugging Face's X-Linked-Etag), a fault that
    closes the connection after ``cut_after`` bytes on the next ``cuts`` GETs, and the hub API that
    ``snapshot_download`` calls for a model folder."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.linked_sha: set[str] = set()   # paths whose HEAD carries X-Linked-Etag (their sha256)
        self.redirects: dict[str, str] = {}  # path -> path (or full URL) it answers with a 302 to (HF, Zenodo)
        self.announced: dict[str, bytes] = {}  # path -> bytes whose sha256 its 302 announces (default: target)
        self.repos: dict[str, dict[str, bytes]] = {}
        self.requests: list[tuple[str, str, dict]] = []
        self.cuts = 0
        self.cut_after = 0
        self.delay = 0.0  # seconds before a file's body is sent (a slow server, for the concurrency test)
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_HEAD(self):
                server.requests.append(("HEAD", self.path, self.headers))
                self._serve(head=True)

            def do_GET(self):
                server.requests.append(("GET", self.path, self.headers))
                self._serve(head=False)

            def _send(self, code, body=b"", headers=None, head=False):
                self.send_response(code)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if not head:
                    self.wfile.write(body)

            def _serve(self, head):
                path = self.path.split("?")[0]
                m = re.fullmatch(r"/api/models/(.+)/revision/main", path)
                if m and m.group(1) in server.repos:
                    return self._send(200, json.dumps({"id": m.group(1), "sha": COMMIT, "siblings": [
                        {"rfilename": f} for f in server.repos[m.group(1)]]}).encode(),
                        {"Content-Type": "application/json"}, head)
                m = re.fullmatch(r"/api/models/(.+)/tree/" + COMMIT + r"(/.*)?", path)
                if m and m.group(1) in server.repos:
                    tree = [{"type": "file", "path": f, "size": len(b), "oid": hashlib.sha1(b).hexdigest()}
                            for f, b in server.repos[m.group(1)].items()]
                    return self._send(200, json.dumps(tree).encode(), {"Content-Type": "application/json"}, head)
                m = re.fullmatch(r"/(.+)/resolve/(?:main|" + COMMIT + r")/(.+)", path)
                if m and m.group(1) in server.repos and m.group(2) in server.repos[m.group(1)]:
                    body = server.repos[m.group(1)][m.group(2)]
                    etag = f'"{hashlib.sha1(body).hexdigest()}"'
                    return self._send(200, body, {"X-Repo-Commit": COMMIT, "ETag": etag}, head)
                if path in server.redirects:
                    target = server.redirects[path]
                    headers = {"Location": target if "://" in target else server.url + target, "X-Repo-Commit": COMMIT}
                    if path in server.linked_sha:  # Hugging Face: the LFS file's sha256 and size on the 302
                        served = server.files.get(target.split(str(server.httpd.server_port))[-1], b"")
                        announced = server.announced.get(path, served)
                        headers["X-Linked-Etag"] = f'"{hashlib.sha256(announced).hexdigest()}"'
                        headers["X-Linked-Size"] = str(len(served))
                    return self._send(302, b"redirecting to the storage host", headers, head)
                if path not in server.files:
                    return self._send(404, b"not found", head=head)
                body = server.files[path]
                etag = f'"{hashlib.md5(body).hexdigest()}"'
                headers = {"ETag": etag, "Accept-Ranges": "bytes", "X-Repo-Commit": COMMIT}
                if path in server.linked_sha:
                    headers["X-Linked-Etag"] = f'"{hashlib.sha256(body).hexdigest()}"'
                    headers["X-Linked-Size"] = str(len(body))
                if head:
                    return self._send(200, body, headers, head=True)
                start, code = 0, 200
                rng = self.headers.get("Range")
                if rng and self.headers.get("If-Range", etag) == etag:
                    start = int(re.fullmatch(r"bytes=(\d+)-", rng).group(1))
                    if start >= len(body):
                        return self._send(416, b"", {"Content-Range": f"bytes */{len(body)}"})
                    code = 206
                    headers["Content-Range"] = f"bytes {start}-{len(body) - 1}/{len(body)}"
                rest = body[start:]
                time.sleep(server.delay)
                self.send_response(code)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(rest)))
                self.end_headers()
                if server.cuts > 0:  # announce everything, send part of it, hang up
                    server.cuts -= 1
                    self.wfile.write(rest[:server.cut_after])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(rest)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def gets(self, path: str) -> list:  # each request's headers, case-insensitive (httpx sends lower case)
        return [h for m, p, h in self.requests if m == "GET" and p.split("?")[0] == path]



def payload(n: int, seed: int = 0) -> bytes:
    return hashlib.sha256(str(seed).encode()).digest() * (n // 32) + b"x" * (n % 32)


@pytest.fixture
def server():
    """A started ``Server``, shut down after the test."""
    s = Server()
    s.thread.start()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()
