"""Hub metadata: offline and unreachable Hubs fail fast; a fake local Hub checks the mapping."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from transferlab.catalog.hf import fetch_hf_metadata, hub_is_offline
from transferlab.errors import ModelSourceError

hf_constants = pytest.importorskip("huggingface_hub.constants")

MODEL_ID = "acme/tiny-sentiment"
SHA = "0123456789abcdef0123456789abcdef01234567"
CARD = (
    "---\nlicense: cc-by-nc-4.0\nlanguage: [en, de]\ntags: [sentiment]\n---\n"
    "# Tiny sentiment\n\nA tiny sentiment classifier for product reviews in two languages.\n"
)
MODEL_INFO = {
    "id": MODEL_ID,
    "sha": SHA,
    "pipeline_tag": "text-classification",
    "library_name": "transformers",
    "tags": ["transformers", "safetensors", "bert", "license:cc-by-nc-4.0", "en", "de"],
    "config": {"architectures": ["BertForSequenceClassification"], "model_type": "bert"},
    "cardData": {"license": "cc-by-nc-4.0", "language": ["en", "de"], "tags": ["sentiment"]},
    "safetensors": {"parameters": {"F32": 1_000_000, "I64": 512}, "total": 1_000_512},
    "siblings": [
        {"rfilename": "README.md", "size": len(CARD)},
        {"rfilename": "config.json", "size": 700},
        {"rfilename": "model.safetensors", "size": 4_000_000},
        {"rfilename": "tokenizer.json", "size": 466_000},
        {"rfilename": "onnx/model.onnx", "size": 4_100_000},
        {"rfilename": "tf_model.h5", "size": 4_200_000},
    ],
}


@pytest.fixture
def online(monkeypatch) -> None:
    """Online mode as far as both transferlab and huggingface_hub can tell."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)  # read once at import


class _FakeHub(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's spelling)
        if self.path.startswith(f"/api/models/{MODEL_ID}"):
            self._send(200, json.dumps(MODEL_INFO).encode(), "application/json")
        elif self.path == f"/{MODEL_ID}/resolve/{SHA}/README.md":
            self._send(200, CARD.encode(), "text/markdown")
        else:
            body = json.dumps({"error": "Repository not found"}).encode()
            self._send(404, body, "application/json", {"X-Error-Code": "RepoNotFound"})

    def _send(self, status: int, body: bytes, kind: str, headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def fake_hub(online, monkeypatch) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeHub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setattr(hf_constants, "ENDPOINT", endpoint)
    yield endpoint
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("value", ["1", "true", "YES", "on"])
@pytest.mark.parametrize("var", ["HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"])
def test_hub_is_offline(monkeypatch, var, value):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    assert not hub_is_offline()
    monkeypatch.setenv(var, value)
    assert hub_is_offline()
    monkeypatch.setenv(var, "0")
    assert not hub_is_offline()


def test_offline_fails_at_once(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(ModelSourceError) as err:
        fetch_hf_metadata("sentence-transformers/all-MiniLM-L6-v2")
    assert time.perf_counter() - start < 2.0
    assert "offline" in err.value.problem
    assert "sentence-transformers/all-MiniLM-L6-v2" in err.value.problem
    assert "transferlab import local" in err.value.fix


def test_metadata_mapped_from_hub(fake_hub):
    record = fetch_hf_metadata(MODEL_ID)
    assert record.name == "tiny-sentiment"
    assert (record.source, record.source_ref) == ("hf", MODEL_ID)
    assert record.task == "text-classification"
    assert (record.architecture, record.model_type) == ("BertForSequenceClassification", "bert")
    assert record.library == "transformers"
    assert (record.license, record.commercial_use) == ("cc-by-nc-4.0", False)
    assert record.languages == ["en", "de"]
    assert record.parameters == 1_000_000  # the int64 buffer is not a parameter
    # weights + top-level side files; the onnx and tf copies are not what transformers loads
    assert record.size_bytes == len(CARD) + 700 + 4_000_000 + 466_000
    assert "license:cc-by-nc-4.0" in record.tags
    assert record.card_text.startswith("# Tiny sentiment")
    assert record.description == "A tiny sentiment classifier for product reviews in two languages."
    assert fetch_hf_metadata(MODEL_ID, name="mine").name == "mine"


def test_missing_repository_named(fake_hub):
    with pytest.raises(ModelSourceError) as err:
        fetch_hf_metadata("nobody/no-such-model")
    assert "nobody/no-such-model" in err.value.problem
    assert "Check the id" in err.value.fix


def test_refused_connection_fails_fast(online, monkeypatch):
    with socket.socket() as sock:  # a port nobody listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setattr(hf_constants, "ENDPOINT", f"http://127.0.0.1:{port}")
    start = time.perf_counter()
    with pytest.raises(ModelSourceError) as err:
        fetch_hf_metadata(MODEL_ID)
    assert time.perf_counter() - start < 3.0
    assert "Cannot reach the Hugging Face Hub" in err.value.problem
    assert "HF_HUB_OFFLINE=1" in err.value.fix


def test_silent_hub_fails_within_timeout(online, monkeypatch):
    """A server that accepts but never answers: the deadline, not retries, decides."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        monkeypatch.setattr(hf_constants, "ENDPOINT", f"http://127.0.0.1:{sock.getsockname()[1]}")
        start = time.perf_counter()
        with pytest.raises(ModelSourceError) as err:
            fetch_hf_metadata(MODEL_ID, timeout=0.5)
        elapsed = time.perf_counter() - start
    assert elapsed < 3.0
    assert MODEL_ID in err.value.problem
