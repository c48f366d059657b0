"""``fairs serve``: the command starts the service on 127.0.0.1, and says which extra is missing."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest
from serve_helpers import REPO

from fairs_sdk.cli import build_parser, main


def test_defaults_bind_localhost():
    args = build_parser().parse_args(["serve"])
    assert args.host == "127.0.0.1" and args.port == 8000 and args.model is None


def test_missing_extra_is_one_line_and_status_2(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # makes `import uvicorn` raise ImportError
    assert main(["serve"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, f"expected one line, got {err!r}"
    assert "pip install 'fairs-sdk[serve]'" in err and "uvicorn" in err, err


def test_command_serves_model_info_on_a_free_port():
    httpx = pytest.importorskip("httpx")
    pytest.importorskip("uvicorn")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "fairs_sdk.cli", "serve", "--port", str(port), "--cache-images", "5",
                             "--log-level", "warning"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                info = httpx.get(f"http://127.0.0.1:{port}/v1/model", timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None, f"fairs serve exited: {proc.stdout.read()[-2000:]}"
                assert time.monotonic() < deadline, "fairs serve did not answer in 120 s"
                time.sleep(0.3)
        assert info.status_code == 200, info.text
        assert info.json()["limits"]["cache_images"] == 5, "--cache-images did not reach the app"
        assert info.json()["model"] == "default.onnx"
    finally:
        proc.terminate()
        proc.wait(20)
