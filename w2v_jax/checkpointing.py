"""Orbax checkpoints: periodic async saves, keep-latest-N, exact resume, refusal of a wrong resume.

A checkpoint holds the two tables and, as JSON, the step, the data position (epoch, stream index,
words read), the learning-rate anchor, a checksum of the tables (to detect a damaged checkpoint),
and what must not change across a resume (config fields, vocabulary hash, corpus files).
A damaged checkpoint is moved to checkpoints/damaged/<step>; a failed save is one UserError line.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import logging
import os
import shutil
import sys
import time
import warnings
from collections.abc import Iterator
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from w2v_jax import distributed
from w2v_jax.errors import UserError, first_line
from w2v_jax.model import Tables
from w2v_jax.workdir import Workdir

_ORBAX_DIR = os.path.dirname(ocp.__file__)
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)

# Config fields that may change when a run resumes; any other difference is refused.
RESUMABLE_FIELDS = frozenset({
    "epochs", "input", "log_every_steps", "tensorboard_every_steps", "eval_every_epoch", "probe_words",
    "checkpoint_every_steps", "checkpoint_every_secs", "keep_checkpoints", "restart", "num_devices", "table_layout",
    "coordinator_address", "num_processes", "process_id", "coordinator_timeout_secs",
})


def file_sha256(path: str) -> str:
  """Hex sha256 of a file (the vocabulary's identity)."""
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      digest.update(chunk)
  return digest.hexdigest()


@jax.jit
def fingerprint(tables: Tables) -> jax.Array:
  """Sum and sum of squares of each table: the damage check of checkpoints saved before checksum existed."""
  return jnp.stack([jnp.sum(tables.input), jnp.sum(jnp.square(tables.input)),
                    jnp.sum(tables.output), jnp.sum(jnp.square(tables.output))])


@jax.jit
def _table_checksum(table: jax.Array) -> jax.Array:
  """The sum mod 2**32 of the table's raw 32-bit words, each times an odd weight: its row's times its column's."""
  bits = jax.lax.bitcast_convert_type(table, jnp.uint32)
  col_weights = jax.lax.iota(jnp.uint32, bits.shape[1]) * jnp.uint32(0x9E3779B1) | jnp.uint32(1)
  row_weights = jax.lax.iota(jnp.uint32, bits.shape[0]) * jnp.uint32(0x85EBCA77) | jnp.uint32(1)
  return jnp.sum(jnp.sum(bits * col_weights, axis=1, dtype=jnp.uint32) * row_weights, dtype=jnp.uint32)


def checksum(tables: Tables) -> list[int]:
  """A checksum of each table's raw bits, computed on the devices (exact under any sharding: integer sums).

  Its weights are odd, so any change within one word (every single flipped bit) changes it; moved rows change
  it too. One jit per table: XLA on CPU runs both in one program ~10x slower.
  """
  sums = [_table_checksum(tables.input), _table_checksum(tables.output)]  # both start before either is read
  return [int(x) for x in sums]


def _verify(tables: Tables, meta: dict) -> None:
  """Raises ValueError when the restored tables are not the ones the checkpoint's metadata describes."""
  if "checksum" in meta:
    if checksum(tables) != meta["checksum"]:
      raise ValueError("its tables do not match the checksum saved with them")
  elif not np.allclose(np.asarray(fingerprint(tables)), meta["fingerprint"], rtol=1e-5, atol=1e-6):
    raise ValueError("its tables do not match the fingerprint saved with them")


class _DropOrbaxErrors(logging.Filter):
  """Drops Orbax's error logs (tracebacks from its threads): each failure also reaches the Checkpointer as an
  exception, which it reports in one line."""

  def filter(self, record: logging.LogRecord) -> bool:
    return record.levelno < logging.ERROR or not record.pathname.startswith(_ORBAX_DIR)


def _ignore_closed_loop(unraisable, previous) -> None:
  """Drops 'Event loop is closed' from TensorStore reads still running when Orbax's restore loop failed and
  closed (their results are discarded anyway); anything else goes to the previous hook."""
  error = unraisable.exc_value
  if unraisable.object is None and isinstance(error, RuntimeError) and str(error) == "Event loop is closed":
    return
  previous(unraisable)


@functools.cache
def _quiet_orbax() -> None:
  """Installs, once per process, the two filters above, and drops the warnings about the coroutines a failed
  Orbax restore leaves unawaited (this program has none of its own)."""
  logging.getLogger("absl").addFilter(_DropOrbaxErrors())
  sys.unraisablehook = functools.partial(_ignore_closed_loop, previous=sys.unraisablehook)
  warnings.filterwarnings("ignore", r"coroutine .* was never awaited", RuntimeWarning)


class Checkpointer:
  """Owns the CheckpointManager of <workdir>/checkpoints (one place for the save policy)."""

  def __init__(self, workdir: str, keep: int | None, every_steps: int, every_secs: float, read_only: bool = False):
    _quiet_orbax()
    self.directory = Workdir(workdir).checkpoints
    self.every_steps, self.every_secs, self.read_only = every_steps, every_secs, read_only
    self.last_save, self.last_step = time.monotonic(), -1
    self.damaged: list[int] = []  # the steps restore_latest found damaged, newest first
    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep, create=not read_only, cleanup_tmp_directories=not read_only, read_only=read_only,
        enable_async_checkpointing=True)
    self.manager = ocp.CheckpointManager(self.directory, options=options, item_names=("tables", "meta"))

  def due(self, step: int, by_time: bool = True) -> bool:
    """Whether the save policy (every N steps and/or every T seconds) asks for a save now.

    by_time=False leaves the clock out: several processes must agree, and their clocks differ.
    """
    by_steps = self.every_steps > 0 and step % self.every_steps == 0
    by_time = by_time and self.every_secs > 0 and time.monotonic() - self.last_save >= self.every_secs
    return by_steps or by_time

  def save(self, step: int, tables: Tables, meta: dict) -> None:
    """Starts an async save; training goes on while Orbax writes (a finished save is atomic).

    A failed save, this one or the previous one, is a UserError; the finished checkpoints stay as they were.
    """
    self.wait()  # the previous save's failure is reported under its own step
    with self._writing(step):
      if step == self.last_step:  # an epoch-end save at the step of a periodic one: the later position wins
        self.manager.delete(step)
      self.last_step = step
      meta = {**meta, "step": step, "checksum": checksum(tables)}
      items = {"input": tables.input, "output": tables.output}
      self.manager.save(step, args=ocp.args.Composite(
          tables=ocp.args.StandardSave(items), meta=ocp.args.JsonSave(meta)), force=True)
    self.last_save = time.monotonic()

  def restore_latest(self, like: Tables, identity: dict | None = None) -> tuple[Tables, dict] | None:
    """The newest checkpoint that restores and matches its checksum; damaged ones are reported and skipped.

    With identity, a checkpoint of a different run is refused (UserError) before any table is read,
    so a changed setting can never pass for a damaged checkpoint and silently start over.
    Unless read-only (training's resume), each damaged step is moved to checkpoints/damaged, so that the step
    can be saved again, and when none is left it says that training starts over.
    """
    abstract = {name: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding)
                for name, x in (("input", like.input), ("output", like.output))}
    steps = sorted(self.manager.all_steps(), reverse=True)
    self.damaged, restored = [], None
    for i, step in enumerate(steps):
      restored = self._restore(step, like, abstract, identity, has_previous=i + 1 < len(steps))
      if restored is not None:
        break
    if self.read_only:
      return restored
    distributed.barrier("checkpoints_set_aside")  # then every process's manager forgets the steps moved aside
    self.manager.reload()
    if restored is not None:  # an epoch-end save at the restored step replaces it
      self.last_step = restored[1]["step"]
    elif self.damaged:
      distributed.log(f"no checkpoint in {self.directory} could be restored (all {len(self.damaged)} damaged, "
                      f"moved to {self.directory}/damaged); training starts over from step 0")
    return restored

  def _restore(self, step: int, like: Tables, abstract: dict, identity: dict | None,
               has_previous: bool) -> tuple[Tables, dict] | None:
    """One step's tables and metadata, or None when it is damaged (then reported, and set aside)."""
    try:
      meta = self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
    except Exception as e:  # noqa: BLE001 - unreadable metadata: damaged, use the previous one
      self._set_aside(step, e, has_previous)
      return None
    if identity is not None:
      check_resume(meta["identity"], identity)
    try:
      restored = self.manager.restore(step, args=ocp.args.Composite(tables=ocp.args.StandardRestore(abstract)))
      tables = Tables(restored["tables"]["input"], restored["tables"]["output"])
      _verify(tables, meta)
      return tables, meta
    except Exception as e:  # noqa: BLE001 - any failure to read the tables: damaged, use the previous one
      self._set_aside(step, e, has_previous)
      return None

  def _set_aside(self, step: int, error: Exception, has_previous: bool) -> None:
    """Reports a damaged step in one line and (unless read-only, on process 0) moves it to damaged/<step>."""
    self.damaged.append(step)
    source, moved = os.path.join(self.directory, str(step)), ""
    if not self.read_only and distributed.is_main():
      target = base = os.path.join(self.directory, "damaged", str(step))
      n = 0
      while os.path.exists(target):  # the same step may have been damaged before
        n += 1
        target = f"{base}.{n}"
      try:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.rename(source, target)
      except OSError as e:
        raise UserError(f"checkpoint {source} is damaged ({first_line(error, 200)}) and cannot be moved aside "
                        f"({e.strerror}); move or delete it, then rerun") from None
      moved = f"; moved it to {target}"
    distributed.log(f"checkpoint {source} is damaged ({first_line(error, 200)}){moved}"
                    + ("; trying the previous one" if has_previous else ""))

  @contextlib.contextmanager
  def _writing(self, step: int) -> Iterator[None]:
    """Turns a failure to write checkpoint `step` into one UserError line."""
    try:
      yield
    except Exception as e:  # noqa: BLE001 - Orbax/TensorStore raise ValueError, OSError, RuntimeError...
      path = os.path.join(self.directory, str(step))
      full = [os.strerror(code) for code in _NO_SPACE if getattr(e, "errno", None) == code
              or os.strerror(code) in str(e)]  # TensorStore's errors are ValueErrors that quote the OS error
      if full:
        raise UserError(f"checkpoint {path} could not be written ({full[0]}); free space in {self.directory} "
                        "(or lower --config.keep_checkpoints), then run the same command to resume from the last "
                        "finished checkpoint") from None
      raise UserError(f"checkpoint {path} could not be written ({first_line(e, 200)}); fix that, then run the same "
                      "command to resume from the last finished checkpoint") from None

  def wait(self) -> None:
    """Blocks until pending async saves are on disk (UserError if one failed)."""
    with self._writing(self.last_step):
      self.manager.wait_until_finished()

  def close(self) -> None:
    """Waits for the pending save (UserError if it failed) and releases Orbax's threads."""
    try:
      self.wait()
    finally:
      self.manager.close()


def remove_checkpoints(workdir: str) -> None:
  """Deletes the checkpoints of a run that is deliberately started over."""
  shutil.rmtree(Workdir(workdir).checkpoints, ignore_errors=True)


def check_resume(saved: dict, current: dict) -> None:
  """Refuses to resume when a field other than RESUMABLE_FIELDS differs, listing every difference."""
  keys = (set(saved) | set(current)) - RESUMABLE_FIELDS
  diffs = [f"{k}: checkpoint {saved.get(k)!r}, now {current.get(k)!r}" for k in sorted(keys)
           if saved.get(k) != current.get(k)]
  if diffs:
    raise UserError("cannot resume: the run in this workdir differs (" + "; ".join(diffs)
                    + "); use the same settings, another --workdir, or --config.restart=True")


class LatestTables(NamedTuple):
  """What latest_tables restored: the tables, their step, and the newer steps found damaged."""

  input: np.ndarray
  output: np.ndarray
  step: int
  damaged: list[int]


def latest_tables(workdir: str, vocab_size: int, dim: int) -> LatestTables | None:
  """The tables of the newest good checkpoint in workdir (for eval.py, read-only), or None."""
  if not Workdir(workdir).has_checkpoints():
    return None
  table = jax.ShapeDtypeStruct((vocab_size, dim), jnp.float32, sharding=jax.sharding.SingleDeviceSharding(
      jax.devices()[0]))
  like = Tables(table, table)
  checkpointer = Checkpointer(workdir, keep=None, every_steps=0, every_secs=0, read_only=True)
  try:
    restored = checkpointer.restore_latest(like)
  finally:
    checkpointer.close()
  if restored is None:
    return None
  tables, meta = restored
  return LatestTables(np.asarray(tables.input), np.asarray(tables.output), meta["step"], checkpointer.damaged)
