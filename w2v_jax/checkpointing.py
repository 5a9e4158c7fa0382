"""Orbax checkpoints: periodic async saves, keep-latest-N, exact resume, refusal of a wrong resume.

A checkpoint holds the two tables and, as JSON, the step, the data position (epoch, stream index,
words read), the learning-rate anchor, fingerprints of the tables (to detect a damaged checkpoint),
and what must not change across a resume (config fields, vocabulary hash, corpus files).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from w2v_jax.errors import UserError
from w2v_jax.model import Tables

# Config fields that may change when a run resumes; any other difference is refused.
RESUMABLE_FIELDS = frozenset({
    "epochs", "input", "log_every_steps", "eval_every_epoch", "probe_words", "checkpoint_every_steps",
    "checkpoint_every_secs", "keep_checkpoints", "restart", "num_devices", "table_layout", "coordinator_address",
    "num_processes", "process_id",
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
  """Sum and sum of squares of each table: cheap to compare, catches damaged or mixed-up data."""
  return jnp.stack([jnp.sum(tables.input), jnp.sum(jnp.square(tables.input)),
                    jnp.sum(tables.output), jnp.sum(jnp.square(tables.output))])


class Checkpointer:
  """Owns the CheckpointManager of <workdir>/checkpoints (one place for the save policy)."""

  def __init__(self, workdir: str, keep: int | None, every_steps: int, every_secs: float, read_only: bool = False):
    self.directory = os.path.abspath(os.path.join(workdir, "checkpoints"))
    self.every_steps, self.every_secs = every_steps, every_secs
    self.last_save, self.last_step = time.monotonic(), -1
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
    """Starts an async save; training goes on while Orbax writes (a finished save is atomic)."""
    if step == self.last_step:  # an epoch-end save at the step of a periodic one: the later position wins
      self.manager.wait_until_finished()
      self.manager.delete(step)
    self.last_step = step
    meta = {**meta, "step": step, "fingerprint": np.asarray(fingerprint(tables)).tolist()}
    items = {"input": tables.input, "output": tables.output}
    self.manager.save(step, args=ocp.args.Composite(
        tables=ocp.args.StandardSave(items), meta=ocp.args.JsonSave(meta)), force=True)
    self.last_save = time.monotonic()

  def restore_latest(self, like: Tables, identity: dict | None = None) -> tuple[Tables, dict] | None:
    """The newest checkpoint that restores and matches its fingerprint; damaged ones are skipped.

    With identity, a checkpoint of a different run is refused (UserError) before any table is read,
    so a changed setting can never pass for a damaged checkpoint and silently start over.
    """
    abstract = {name: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding)
                for name, x in (("input", like.input), ("output", like.output))}
    for step in sorted(self.manager.all_steps(), reverse=True):
      try:
        meta = self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
      except Exception as e:  # noqa: BLE001 - unreadable metadata: damaged, use the previous one
        self._report_damaged(step, e)
        continue
      if identity is not None:
        check_resume(meta["identity"], identity)
      try:
        restored = self.manager.restore(step, args=ocp.args.Composite(tables=ocp.args.StandardRestore(abstract)))
        tables = Tables(restored["tables"]["input"], restored["tables"]["output"], like.touched)
        if not np.allclose(np.asarray(fingerprint(tables)), meta["fingerprint"], rtol=1e-5, atol=1e-6):
          raise ValueError("its tables do not match the fingerprint saved with them")
        return tables, meta
      except Exception as e:  # noqa: BLE001 - any failure to read the tables: damaged, use the previous one
        self._report_damaged(step, e)
    return None

  def _report_damaged(self, step: int, error: Exception) -> None:
    first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
    print(f"checkpoint {self.directory}/{step} is damaged ({first_line[:200]}); trying the previous one")

  def wait(self) -> None:
    """Blocks until pending async saves are on disk."""
    self.manager.wait_until_finished()

  def close(self) -> None:
    self.manager.wait_until_finished()
    self.manager.close()


def has_checkpoints(workdir: str) -> bool:
  """Whether workdir holds at least one finished checkpoint."""
  directory = os.path.join(workdir, "checkpoints")
  return os.path.isdir(directory) and any(name.isdigit() for name in os.listdir(directory))


def remove_checkpoints(workdir: str) -> None:
  """Deletes the checkpoints of a run that is deliberately started over."""
  shutil.rmtree(os.path.join(workdir, "checkpoints"), ignore_errors=True)


def check_resume(saved: dict, current: dict) -> None:
  """Refuses to resume when a field other than RESUMABLE_FIELDS differs, listing every difference."""
  keys = (set(saved) | set(current)) - RESUMABLE_FIELDS
  diffs = [f"{k}: checkpoint {saved.get(k)!r}, now {current.get(k)!r}" for k in sorted(keys)
           if saved.get(k) != current.get(k)]
  if diffs:
    raise UserError("cannot resume: the run in this workdir differs (" + "; ".join(diffs)
                    + "); use the same settings, another --workdir, or --config.restart=True")


def latest_tables(workdir: str, vocab_size: int, dim: int) -> tuple[np.ndarray, np.ndarray] | None:
  """The (input, output) tables of the newest good checkpoint in workdir (for eval.py), or None."""
  if not has_checkpoints(workdir):
    return None
  like = Tables(jnp.zeros((vocab_size, dim)), jnp.zeros((vocab_size, dim)), jnp.zeros(vocab_size, jnp.int32))
  checkpointer = Checkpointer(workdir, keep=None, every_steps=0, every_secs=0, read_only=True)
  try:
    restored = checkpointer.restore_latest(like)
  finally:
    checkpointer.close()
  return None if restored is None else (np.asarray(restored[0].input), np.asarray(restored[0].output))
