"""benchmarks/load.py: it only ever sends to loopback, and its short run reports honestly."""

import importlib.util
import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "load.py"


def load_module():
    # The script imports its sibling benchmarks/local_server.py, as when run directly.
    if str(SCRIPT.parent) not in sys.path:
        sys.path.insert(0, str(SCRIPT.parent))
    spec = importlib.util.spec_from_file_location("convscope_load", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8000", "http://localhost:8000/", "http://[::1]:9"]
)
def test_loopback_urls_are_accepted(url: str) -> None:
    assert load_module().loopback_only(url) == url.rstrip("/")


@pytest.mark.parametrize(
    "url", ["http://10.0.0.1:8000", "http://0.0.0.0:8000", "https://127.0.0.1", "ftp://x", "x"]
)
def test_anything_else_is_refused_before_a_byte_is_sent(url: str, monkeypatch) -> None:
    load = load_module()
    connections: list[object] = []
    monkeypatch.setattr(socket.socket, "connect", lambda self, address: connections.append(address))
    monkeypatch.setattr(sys, "argv", ["load.py", "--url", url, "--clients", "1", "--seconds", "1"])
    with pytest.raises(SystemExit) as refused:
        load.main()
    assert "refusing" in str(refused.value) or "must be http" in str(refused.value)
    assert connections == []  # the whole script stopped before opening any connection


@pytest.mark.slow  # a server and the load script, in subprocesses
def test_a_short_hostile_run_reports_and_passes() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--clients", "2", "--seconds", "2", "--hostile", "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    figures = json.loads(result.stdout.splitlines()[-2])
    assert figures["requests"] > 0 and figures["problems"] == {}
    assert figures["server_tracebacks"] == 0 and figures["peak_rss_mb"] > 0
    # The decoding workers start in the warm-up, so the measured run's growth is its own.
    assert figures["warm_up_growth_mb"] > 0 and figures["growth_mb"] < 50
    assert set(figures["statuses"]) <= {"200", "413", "415", "422", "503"}
