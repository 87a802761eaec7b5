"""Let the C library keep the training step's freed buffers instead of unmapping them.

A training step allocates im2col buffers of 30-100 MB and frees them again. glibc's malloc
serves blocks over 32 MB with mmap and gives them back with munmap, so every step the
kernel hands the same memory back page by page, zeroed: a fifth of the trainer's CPU time
went to those page faults. Raising the mmap and trim thresholds, with one arena for all
threads, lets malloc reuse the freed blocks (BENCHMARKS.md has the figures).

Process-wide and for good, so only a process that exists to train calls it; the server's
buffers are small and it wants its memory back. The server only limits how many arenas
its threads spread over (limit_arenas).
"""

import ctypes
import ctypes.util

# mallopt's parameter numbers, from glibc's <malloc.h>.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8


def _mallopt():
    """glibc's mallopt, or None where the C library is not glibc."""
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return None
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return mallopt


def limit_arenas(count: int) -> bool:
    """Let at most `count` malloc arenas serve this process's threads (glibc's default is
    8 per core). Each arena keeps what its threads freed; a server whose runs hop between
    threads otherwise creeps up in resident memory (BENCHMARKS.md, the soak)."""
    mallopt = _mallopt()
    return mallopt is not None and mallopt(M_ARENA_MAX, count) == 1


def keep_freed_buffers(largest: int = 1 << 30) -> bool:
    """Ask glibc to reuse freed blocks up to `largest` bytes rather than return them to the
    kernel. False, changing nothing, where the C library is not glibc."""
    mallopt = _mallopt()
    if mallopt is None:
        return False
    settings = [
        (M_ARENA_MAX, 1),  # threads' own arenas would unmap their big blocks regardless
        (M_MMAP_THRESHOLD, largest),
        (M_TRIM_THRESHOLD, 2**31 - 1),
    ]
    return all(mallopt(parameter, value) == 1 for parameter, value in settings)
