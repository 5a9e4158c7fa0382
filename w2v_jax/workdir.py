"""A run directory and the name of every file in it: the one place that knows the workdir's layout."""

from __future__ import annotations

import dataclasses
import os
import socket

from w2v_jax.errors import UserError


@dataclasses.dataclass(frozen=True)
class Workdir:
  """Where a training run keeps its inputs' cache, its state and its outputs (train.py's --workdir)."""

  path: str

  def file(self, name: str) -> str:
    return os.path.join(self.path, name)

  @property
  def config(self) -> str:
    """The run's config as JSON (eval.py reads its dim)."""
    return self.file("config.json")

  @property
  def results(self) -> str:
    """The summary: speed, steps, evaluation scores, the tables' sha256."""
    return self.file("results.json")

  @property
  def vectors_txt(self) -> str:
    return self.file("vectors.txt")

  @property
  def vectors_bin(self) -> str:
    return self.file("vectors.bin")

  @property
  def vocab_tsv(self) -> str:
    """word<TAB>count, ids by position."""
    return self.file("vocab.tsv")

  @property
  def vocab_json(self) -> str:
    """The vocabulary's totals, what it was built from and its token cache files."""
    return self.file("vocab.json")

  @property
  def vocab_counts(self) -> str:
    """Where the processes of a multi-host run leave their counts for process 0 to merge."""
    return self.file("vocab_counts")

  @property
  def checkpoints(self) -> str:
    return os.path.abspath(self.file("checkpoints"))

  @property
  def tensorboard(self) -> str:
    return self.file("tensorboard")

  @property
  def lock(self) -> str:
    """The flock that keeps a second run out (workdir_lock)."""
    return self.file(".lock")

  @property
  def sentences(self) -> str:
    """Where w2v_jax.train writes sentences given as a list."""
    return self.file("sentences.txt")

  @staticmethod
  def token_cache_names(hosts: int) -> list[str]:
    """The token cache files of a run on `hosts` processes, one per process, in stream order."""
    return ["tokens.i32"] if hosts == 1 else [f"tokens-{i:05d}-of-{hosts:05d}.i32" for i in range(hosts)]

  def has_checkpoints(self) -> bool:
    """Whether the run holds at least one finished checkpoint."""
    return os.path.isdir(self.checkpoints) and any(name.isdigit() for name in os.listdir(self.checkpoints))

  def make(self) -> None:
    """Creates the directory and checks it is writable, failing early with one line."""
    try:
      os.makedirs(self.path, exist_ok=True)
      probe = self.file(f".write_test.{socket.gethostname()}.{os.getpid()}")  # hosts may share the workdir
      with open(probe, "w") as f:
        f.write("ok")
      os.remove(probe)
    except OSError as e:
      raise UserError(f"workdir {self.path!r} is not writable ({e.strerror}); choose another --workdir") from None
