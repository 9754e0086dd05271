"""Small HTTP servers that play the channels' APIs in tests, following their documented
behaviour. Each listens on 127.0.0.1 on an ephemeral port, in a background thread, and is
configured per test through plain attributes (bytes to serve, calls before the file is ready,
failures to inject, link validity, keys)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit


@dataclass
class Request:
    method: str
    path: str
    target: str  # path with query, as sent
    query: dict[str, str]
    headers: dict[str, str]  # names lower-cased
    body: bytes


@dataclass
class Reply:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


class VendorServer:
    """Base: serves `handle(request) -> Reply` on http://127.0.0.1:<port>."""

    def __init__(self):
        self.lock = threading.Lock()
        self.requests: list[Request] = []
        vendor = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self):
                length = int(self.headers.get("Content-Length") or 0)
                parts = urlsplit(self.path)
                req = Request(self.command, parts.path, self.path,
                              dict(parse_qsl(parts.query, keep_blank_values=True)),
                              {k.lower(): v for k, v in self.headers.items()},
                              self.rfile.read(length) if length else b"")
                with vendor.lock:
                    vendor.requests.append(req)
                    reply = vendor.handle(req)
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            do_GET = do_POST = _serve  # noqa: N815 - http.server's naming

            def log_message(self, format, *args):  # noqa: A002 - quiet test output
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,),
                                       daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self):
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def handle(self, req: Request) -> Reply:  # called under self.lock
        raise NotImplementedError

    def calls(self, path: str) -> int:
        with self.lock:
            return sum(r.path == path for r in self.requests)
