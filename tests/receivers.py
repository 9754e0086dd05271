"""Local receivers for alert tests: a webhook (HTTP) and an SMTP server, on 127.0.0.1 port 0.

Both are small and bounded: request sizes, line lengths, commands per session and recorded
items are capped, sockets time out, and each stops when its `with` block ends.
"""

from __future__ import annotations

import base64
import email
import email.policy
import json
import socketserver
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY = 1 << 20
MAX_RECORDS = 100


class _Running:
    """Serve in a thread for the duration of a `with` block."""

    server: socketserver.BaseServer

    def __enter__(self):
        self._thread = threading.Thread(target=self.server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)

    @property
    def port(self) -> int:
        return self.server.server_address[1]


class WebhookReceiver(_Running):
    """Records each POST: path, headers and JSON body. Answers with `status`."""

    def __init__(self, status: int = 200):
        self.posts: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            timeout = 5

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY or len(receiver.posts) >= MAX_RECORDS:
                    self.send_error(413)
                    return
                body = self.rfile.read(length)
                receiver.posts.append({"path": self.path, "headers": dict(self.headers),
                                       "json": json.loads(body.decode("utf-8"))})
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/alerts"


class SmtpReceiver(_Running):
    """A minimal SMTP server: EHLO/HELO, AUTH PLAIN (when a user is set), MAIL, RCPT, DATA,
    RSET, NOOP, QUIT. Records each message: sender, recipients, login and parsed message."""

    def __init__(self, user: str | None = None, password: str | None = None):
        self.messages: list[dict] = []
        receiver = self

        class Handler(socketserver.StreamRequestHandler):
            timeout = 5

            def reply(self, *lines: str) -> None:
                *first, last = lines
                self.wfile.write("".join(f"{line[:3]}-{line[4:]}\r\n" for line in first)
                                 .encode() + f"{last}\r\n".encode())

            def read_line(self) -> bytes:
                return self.rfile.readline(2048)

            def handle(self):
                self.reply("220 localhost test SMTP")
                envelope = {"from": None, "to": [], "login": None}
                for _ in range(100):  # commands per session
                    line = self.read_line()
                    if not line:
                        return
                    command = line.decode("utf-8", "replace").strip()
                    verb = command.split(" ", 1)[0].upper()
                    if verb == "EHLO":
                        extensions = ["250 AUTH PLAIN"] if user else []
                        self.reply("250 localhost", "250 8BITMIME", *extensions)
                    elif verb == "HELO":
                        self.reply("250 localhost")
                    elif verb == "AUTH" and user:
                        parts = command.split(" ")
                        if len(parts) < 3:
                            self.reply("334 ")
                            parts.append(self.read_line().decode().strip())
                        _, name, secret = base64.b64decode(parts[2]).decode().split("\0")
                        if (name, secret) == (user, password):
                            envelope["login"] = name
                            self.reply("235 2.7.0 Authentication successful")
                        else:
                            self.reply("535 5.7.8 Authentication credentials invalid")
                    elif verb == "MAIL":
                        if user and not envelope["login"]:
                            self.reply("530 5.7.0 Authentication required")
                            continue
                        envelope["from"] = command.split(":", 1)[1].split()[0].strip("<>")
                        self.reply("250 OK")
                    elif verb == "RCPT":
                        envelope["to"].append(command.split(":", 1)[1].strip().strip("<>"))
                        self.reply("250 OK")
                    elif verb == "DATA":
                        self.reply("354 End data with <CR><LF>.<CR><LF>")
                        self.data(envelope)
                        envelope = {**envelope, "from": None, "to": []}
                    elif verb in ("RSET", "NOOP"):
                        self.reply("250 OK")
                    elif verb == "QUIT":
                        self.reply("221 Bye")
                        return
                    else:
                        self.reply("502 Command not implemented")

            def data(self, envelope):
                lines, size = [], 0
                while (line := self.read_line()) not in (b".\r\n", b".\n", b""):
                    size += len(line)
                    if size > MAX_BODY:
                        self.reply("552 Message too big")
                        return
                    lines.append(line[1:] if line.startswith(b"..") else line)
                if len(receiver.messages) < MAX_RECORDS:
                    raw = b"".join(lines)
                    receiver.messages.append({
                        **envelope, "raw": raw,
                        "message": email.message_from_bytes(raw, policy=email.policy.default)})
                self.reply("250 OK queued")

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
