"""One training run per workdir: an exclusive flock on <workdir>/.lock, holding the holder's pid and host.

The kernel releases a flock when its process dies (kill -9 included), so a stale lock never blocks a rerun.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
import sys
from collections.abc import Iterator

from w2v_jax import distributed
from w2v_jax.errors import UserError
from w2v_jax.workdir import Workdir


@contextlib.contextmanager
def hold(workdir: str) -> Iterator[None]:
  """Holds the workdir's lock for the block (creating the workdir); a UserError names the current holder."""
  if "://" in workdir:  # os.makedirs would make a local folder named 'gs:'
    raise UserError(f"--workdir={workdir}: remote paths are not supported (the lock, token cache and outputs are "
                    "local files); use a local directory or a mounted one (e.g. gcsfuse)")
  path = Workdir(workdir).lock
  try:
    os.makedirs(workdir, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
  except OSError as e:
    raise UserError(f"workdir {workdir!r} is not writable ({e.strerror}); choose another --workdir") from None
  try:
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
      if e.errno not in (errno.EWOULDBLOCK, errno.EACCES):  # e.g. ENOLCK: a filesystem without locks
        print(f"warning: cannot lock workdir {workdir} ({e.strerror}); make sure no other run uses it",
              file=sys.stderr, flush=True)
      else:
        raise UserError(f"workdir {workdir} is in use by {_holder(fd)} (lock {path}); wait for that run to end, "
                        "stop it, or choose another --workdir") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
    yield
  finally:
    os.close(fd)  # releases the lock


def _holder(fd: int) -> str:
  """'process PID on HOST', as the holder wrote it into the lock file."""
  fields = os.pread(fd, 4096, 0).decode(errors="replace").split()
  return f"process {fields[0]} on {fields[1]}" if len(fields) == 2 else "another process"


@contextlib.contextmanager
def hold_for_run(workdir: str) -> Iterator[None]:
  """Process 0 holds the lock for the block; when it cannot, every process of the run stops, not just process 0."""
  with contextlib.ExitStack() as lock:
    refused = None
    if distributed.is_main():
      try:
        lock.enter_context(hold(workdir))
      except UserError as e:
        refused = e
    if distributed.any_process(refused is not None)[0]:
      raise refused or UserError(f"workdir {workdir} is in use by another run (process 0 could not lock it)")
    yield
