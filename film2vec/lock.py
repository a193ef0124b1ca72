"""One writer per output folder: a command that writes under --out holds DIR/.film2vec.lock while it runs.

The lock is the operating system's (flock on the open file), so it goes with the process however that ends:
a killed run leaves no stale lock. A second command on the same folder waits up to --lock-wait seconds for it,
then stops with exit 4 before it writes anything, naming the command that holds it; the first always
finishes. Folders on this machine only: on a FUSE mount (/Volumes) and remote stores flock is not shared
between machines, and tables by name (--schema) rely on Delta's own commit conflicts (exit 4).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

from film2vec.errors import ConcurrentWriteError
from film2vec.storage import writes_in_place

LOCK_FILE = ".film2vec.lock"
POLL_SECONDS = 0.2


@contextlib.contextmanager
def writing(out: str, command: str, wait_seconds: float = 0.0) -> Iterator[None]:
    """Hold the output folder's lock for the block; ConcurrentWriteError when another process holds it for
    longer than `wait_seconds`. A folder that does not live on this machine is not locked."""
    if not writes_in_place(out):
        yield
        return
    folder = Path(out).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / LOCK_FILE, "a+") as handle:
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise ConcurrentWriteError(
                        f"{folder} is being written by {_holder(handle)}; nothing was written. Wait for it, give "
                        "--lock-wait SECONDS, or use another --out"
                    ) from None
                time.sleep(POLL_SECONDS)
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "command": command, "since": time.strftime("%Y-%m-%dT%H:%M:%S")}))
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            handle.flush()
            fcntl.flock(handle, fcntl.LOCK_UN)


def _holder(handle) -> str:
    """Who holds the lock, as its holder wrote it down."""
    handle.seek(0)
    try:
        found = json.loads(handle.read())
        return f"`film2vec {found['command']}` (pid {found['pid']}, since {found['since']})"
    except (ValueError, KeyError):
        return "another film2vec command"
