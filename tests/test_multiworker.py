"""`convscope serve --workers 2`: a run made by one worker is found by either."""

import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

from tests.images import photo, png

FETCHES = 40
MAX_ROUNDS = 10


def test_runs_are_shared_by_every_worker(run_server, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "CONVSCOPE_RUNS_DIR": str(tmp_path / "runs"),
        "CONVSCOPE_MODELS": "cifar10",
        "CONVSCOPE_WORKER_PID_HEADER": "true",  # which worker answered
    }
    command = [sys.executable, "-m", "app", "serve", "--workers", "2"]
    with run_server(command, env=env) as base_url:
        files = {"image": ("a.png", png(photo()), "image/png")}
        response = httpx.post(f"{base_url}/api/models/cifar10/forward", files=files, timeout=30)
        lines = [json.loads(line) for line in response.text.splitlines()]
        run_id, last = lines[0]["id"], lines[-1]
        assert last["type"] == "scores"
        expected = np.array(
            httpx.get(f"{base_url}/api/runs/{run_id}/layers/15.json", timeout=30).json()["values"]
        )

        def fetch(index: int) -> tuple[int, str, bool]:
            # A new connection each time, so the kernel may hand it to either worker.
            url = f"{base_url}/api/runs/{run_id}/layers/15.json"
            answer = httpx.get(url, timeout=30, headers={"Connection": "close"})
            same = answer.status_code == 200 and np.array_equal(
                np.array(answer.json()["values"]), expected
            )
            return answer.status_code, answer.headers.get("x-worker-pid", ""), same

        results: list[tuple[int, str, bool]] = []
        with ThreadPoolExecutor(8) as pool:
            # Which worker accepts a connection is up to the kernel: fetch until both have
            # answered (almost always in the first round).
            for _ in range(MAX_ROUNDS):
                results += pool.map(fetch, range(FETCHES))
                if len({pid for _, pid, _ in results}) == 2:
                    break
    assert {status for status, _, _ in results} == {200}
    assert all(same for _, _, same in results)
    workers = {pid for _, pid, _ in results}
    assert len(workers) == 2, f"only {workers} answered {len(results)} fetches"
