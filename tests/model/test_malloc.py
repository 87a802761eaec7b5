"""model/training/malloc.py: a freed large buffer is reused instead of faulted in again (the
trainer), and a limit on malloc arenas holds (the server)."""

import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # each check runs in a subprocess

# Allocates, fills and frees a 64 MB buffer six times; prints the page faults of the last five.
PROGRAM = """
import resource, sys
import numpy as np
from model.training.malloc import keep_freed_buffers
if sys.argv[1] == "keep":
    assert keep_freed_buffers()
np.ones(16 * 2**20, np.float32)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    np.ones(16 * 2**20, np.float32)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def page_faults(mode: str) -> int:
    result = subprocess.run(
        [sys.executable, "-c", PROGRAM, mode], capture_output=True, text=True, check=True
    )
    return int(result.stdout)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="tunes glibc's malloc only")
def test_kept_buffers_are_not_faulted_in_again() -> None:
    default, kept = page_faults("default"), page_faults("keep")
    # 64 MB is 16,384 pages of 4 KB (or 32 huge pages): by default each round maps it anew.
    assert default >= 5 * 32
    assert kept < default / 10


# Eight threads allocate at once; malloc_stats() then lists one "Arena N:" per arena.
ARENAS_PROGRAM = """
import ctypes, sys, threading
from model.training.malloc import limit_arenas
if sys.argv[1] == "limit":
    assert limit_arenas(2)
start = threading.Barrier(8)
def allocate():
    start.wait()
    blocks = [bytearray(4096) for _ in range(100)]
threads = [threading.Thread(target=allocate) for _ in range(8)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
ctypes.CDLL("libc.so.6").malloc_stats()
"""


def arenas(mode: str) -> int:
    result = subprocess.run(
        [sys.executable, "-c", ARENAS_PROGRAM, mode], capture_output=True, text=True, check=True
    )
    return sum(line.startswith("Arena ") for line in result.stderr.splitlines())


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="tunes glibc's malloc only")
def test_the_servers_threads_share_at_most_two_arenas() -> None:
    assert arenas("default") > 2
    assert arenas("limit") <= 2
