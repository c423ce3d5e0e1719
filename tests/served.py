"""A REST service app under a real uvicorn in a thread, on a free loopback port, and a plain
HTTP client for it (http.client: nothing of transferlab's own client)."""

from __future__ import annotations

import http.client
import json
import threading
import time
from dataclasses import dataclass

import uvicorn


@dataclass
class Reply:
    status: int
    body: bytes
    headers: dict

    def json(self):
        return json.loads(self.body)


class Served:
    """An app under uvicorn in a thread, on a free loopback port (port 0: the kernel picks)."""

    def __init__(self, app):
        config = uvicorn.Config(
            app, host="127.0.0.1", port=0, log_level="warning", timeout_graceful_shutdown=5
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert self.thread.is_alive(), "the server did not start"
            assert time.monotonic() < deadline, "the server took over 30 s to start"
            time.sleep(0.02)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]

    def call(self, method, path, *, token=None, body=None, raw=None, headers=None) -> Reply:
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            sent["Content-Type"] = "application/json"
        if raw is not None:
            data = raw
            sent.setdefault("Content-Type", "application/octet-stream")
        con = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        try:
            con.request(method, path, body=data, headers=sent)
            response = con.getresponse()
            headers = {name.lower(): value for name, value in response.getheaders()}
            return Reply(response.status, response.read(), headers)
        finally:
            con.close()

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)
