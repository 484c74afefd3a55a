"""One run per output: a lock file inside the job folder (`.NAME.gendrpix/lock`).

The lock is an flock(2) on that file, so the kernel drops it when its process dies however it
dies: a lock left by a dead run is taken over without asking. The file names the run that holds
it (pid, host, start time) for the one-line refusal a second run prints; a second run never
touches the folder's other files.
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import time
from pathlib import Path

from .errors import OutputError

LOCK = "lock"


class JobBusy(OutputError):
    """Another run holds the lock on this output."""


class JobLock:
    def __init__(self, workdir: Path, name: str):
        self.workdir, self.name = workdir, name
        self.path = workdir / LOCK
        self.created = False      # the folder is this run's (no interrupted run left it)
        self._fd: int | None = None

    def acquire(self) -> None:
        """Create the job folder if needed and lock it, or raise JobBusy naming the holder."""
        parent = self.workdir.parent
        try:
            self.workdir.mkdir()
            self.created = True
        except FileExistsError:
            if not self.workdir.is_dir():
                raise OutputError(f"{self.workdir} is in the way of the job folder; remove it") from None
        except FileNotFoundError:
            raise OutputError(f"output folder {parent} does not exist") from None
        except NotADirectoryError:
            raise OutputError(f"output folder {parent} is not a folder") from None
        except PermissionError:
            raise OutputError(f"output folder {parent} is not writable") from None
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = self._read(fd)
                os.close(fd)
                raise JobBusy(f"{self.name}: another run is writing this output ({holder})",
                              hint="wait for it to finish, or choose another output") from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)  # the holder removed the file as we opened it: lock the new one
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                 "started": time.strftime("%Y-%m-%d %H:%M:%S")}).encode())
        self._fd = fd

    @staticmethod
    def _read(fd: int) -> str:
        try:
            d = json.loads(os.pread(fd, 4096, 0) or b"{}")
            return f"pid {d['pid']} on {d['host']}, started {d['started']}"
        except (OSError, ValueError, KeyError, TypeError):
            return "its pid is not recorded yet"

    def release(self, remove_folder: bool = False) -> None:
        """Unlock; `remove_folder` removes the whole job folder first (while still holding it)."""
        if self._fd is None:
            return
        if remove_folder:
            shutil.rmtree(self.workdir, ignore_errors=True)
        else:
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass
        os.close(self._fd)
        self._fd = None

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()
