"""Outputs replaced whole: written to a temporary name beside the file, fsynced, then renamed over it.

A full disk or a crash mid-write leaves the previous file intact (and no half-written one under its name).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator, Sequence
from typing import IO

from w2v_jax.errors import UserError


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", **open_kwargs) -> Iterator[IO]:
  """Opens a temporary file for writing; on success it replaces path, on OSError it is removed (UserError).

  A path that exists but is not a regular file (/dev/stdout, a pipe) is written directly.
  """
  with atomic_writes([path], mode, **open_kwargs) as (f,):
    yield f


@contextlib.contextmanager
def atomic_writes(paths: Sequence[str | os.PathLike], mode: str = "w", **open_kwargs) -> Iterator[list[IO]]:
  """atomic_write for files that belong together (vectors.txt and vectors.bin): every one is on disk before
  any replaces its path, so a failure leaves all the previous files, never a new one beside an old one."""
  with contextlib.ExitStack() as stack:
    files = [stack.enter_context(_staged(path, mode, **open_kwargs)) for path in paths]
    yield files
    for f in files:
      f.flush()
      os.fsync(f.fileno())


@contextlib.contextmanager
def _staged(path: str | os.PathLike, mode: str, **open_kwargs) -> Iterator[IO]:
  """One file of atomic_writes: its temporary file, renamed over path when the block succeeds."""
  path = os.path.realpath(path)  # through a symlink: replace its target, not the link
  if os.path.exists(path) and not stat.S_ISREG(os.stat(path).st_mode):
    with _user_error(path, None), open(path, mode, **open_kwargs) as f:
      yield f
    return
  tmp = f"{path}.tmp"
  with _user_error(path, tmp):
    try:
      with open(tmp, mode, **open_kwargs) as f:
        yield f
      os.replace(tmp, path)
    except BaseException:
      with contextlib.suppress(OSError):
        os.remove(tmp)
      raise
    _fsync_directory(os.path.dirname(path))


@contextlib.contextmanager
def _user_error(path: str, tmp: str | None) -> Iterator[None]:
  """An OSError while writing path as one UserError line; ENOSPC names the disk and the kept previous file."""
  try:
    yield
  except OSError as e:
    kept = "; the previous file, if any, is kept" if tmp else ""
    if e.errno == errno.ENOSPC:
      raise UserError(f"cannot write {path}: no space left on the device{kept}; free space and run again") from None
    raise UserError(f"cannot write {path}: {e.strerror or e}{kept}") from None


def _fsync_directory(directory: str) -> None:
  """Makes the rename durable (best effort: some filesystems cannot open or fsync a directory)."""
  with contextlib.suppress(OSError):
    fd = os.open(directory, os.O_RDONLY)
    try:
      os.fsync(fd)
    finally:
      os.close(fd)
