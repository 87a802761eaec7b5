"""keep_freed_buffers: a freed large buffer is reused instead of faulted in again."""

import platform
import subprocess
import sys

import pytest

# Allocates, fills and frees a 64 MB buffer six times; prints the page faults of the last five.
PROGRAM = """
import resource, sys
import numpy as np
from model.malloc import keep_freed_buffers
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
