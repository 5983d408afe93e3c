"""A file's bytes from memory on the event loop, never waiting there for a disk.

Bytes the page cache holds can go out from the event loop; bytes still on disk are
read in a worker thread, or every other request would wait for the disk (a network
share or a sleeping HDD can take seconds). :func:`memory_chunk` tells them apart:

- with ``cachestat(2)`` (Linux 6.5+), which counts a range's pages in memory without
  reading them, a range in memory is handed out as a view of the file mapped into
  memory: the socket write is its only copy (a whole file streams about twice as fast
  as through read buffers). Our files are renamed into place, never rewritten in
  place, so a mapping stays valid for as long as it is used;
- elsewhere, a read with ``RWF_NOWAIT``, which refuses to wait for the disk, lands in
  a per-thread scratch buffer and is copied out (a fresh buffer per read would cost
  page faults).
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import threading


def memory_chunk(
    descriptor: int, mapped: memoryview | None, position: int, size: int
) -> bytes | memoryview | None:
    """``size`` bytes at ``position`` of the file if memory holds them, else None (read
    those in a worker thread). ``mapped`` is the file from :func:`map_file`."""
    if mapped is not None:
        in_memory = resident(descriptor, position, size)
        if in_memory is not None:
            return mapped[position : position + size] if in_memory else None
    return cached_read(descriptor, size, position)


def map_file(descriptor: int) -> memoryview | None:
    """The whole file mapped read-only; None for an empty file, where it cannot be mapped,
    or where the kernel cannot say what is in memory (the views would never be used).
    It is unmapped when the last view of it is gone."""
    if not _CACHESTAT:
        return None
    try:
        return memoryview(mmap.mmap(descriptor, 0, access=mmap.ACCESS_READ))
    except (OSError, ValueError):
        return None


class _Range(ctypes.Structure):
    _fields_ = [("offset", ctypes.c_uint64), ("length", ctypes.c_uint64)]


class _CacheStat(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_uint64)
        for name in ("cache", "dirty", "writeback", "evicted", "recently_evicted")
    ]


def resident(descriptor: int, position: int, size: int) -> bool | None:
    """Whether every page of ``size`` bytes at ``position`` is in memory (``cachestat``);
    None where the kernel cannot say (before Linux 6.5, or a sandbox refusing the call)."""
    if not _CACHESTAT:
        return None
    asked, counted = _Range(position, size), _CacheStat()
    answer = _LIBC.syscall(
        ctypes.c_long(_SYS_CACHESTAT),
        ctypes.c_int(descriptor),
        ctypes.byref(asked),
        ctypes.byref(counted),
        ctypes.c_uint(0),
    )
    if answer != 0:
        _CACHESTAT.clear()  # not this kernel, or not allowed: never asked again
        return None
    pages = (position + size - 1) // mmap.PAGESIZE - position // mmap.PAGESIZE + 1
    return bool(counted.cache >= pages)


def cached_read(descriptor: int, size: int, position: int) -> bytes | None:
    """What of ``size`` bytes at ``position`` the page cache holds, read at once; None when
    the disk would have to be waited for. A file system without ``RWF_NOWAIT`` always
    answers None."""
    if not _NOWAIT_READS:
        return None
    scratch = _scratch(size)
    try:
        got = os.preadv(descriptor, [memoryview(scratch)[:size]], position, os.RWF_NOWAIT)
    except BlockingIOError:
        return None
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
            raise
        _NOWAIT_READS.clear()  # this file system cannot: the threads from now on
        return None
    return bytes(memoryview(scratch)[:got])


def _scratch(size: int) -> bytearray:
    buffer: bytearray | None = getattr(_SCRATCH, "buffer", None)
    if buffer is None or len(buffer) < size:
        buffer = _SCRATCH.buffer = bytearray(size)
    return buffer


# cachestat's number is the same on every architecture (new calls share one table).
_SYS_CACHESTAT = 451
_LIBC = ctypes.CDLL(None, use_errno=True)
# Emptied the first time the kernel refuses cachestat, or the file system RWF_NOWAIT.
_CACHESTAT = {True} if os.uname().sysname == "Linux" else set()
_NOWAIT_READS = {True} if hasattr(os, "RWF_NOWAIT") else set()
_SCRATCH = threading.local()
