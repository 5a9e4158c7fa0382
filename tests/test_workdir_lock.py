"""The workdir lock: a second run is refused naming the holder, before it touches the workdir; a killed
holder's lock does not block a rerun."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import pytest

from w2v_jax import workdir_lock
from w2v_jax.errors import UserError
from w2v_jax.workdir import Workdir

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_second_holder_is_refused_naming_pid_and_host(tmp_path) -> None:
  """While the lock is held, taking it again fails with one line naming the holder; released, it can be taken."""
  with workdir_lock.hold(str(tmp_path / "run")):
    with pytest.raises(UserError, match=rf"in use by process {os.getpid()} on {socket.gethostname()}"):
      with workdir_lock.hold(str(tmp_path / "run")):
        pass
  with workdir_lock.hold(str(tmp_path / "run")):
    pass


def test_lock_of_a_killed_process_does_not_block(tmp_path) -> None:
  """A holder killed with SIGKILL leaves its lock file behind, but the kernel released the lock itself."""
  workdir = str(tmp_path / "run")
  holder = subprocess.Popen(
      [sys.executable, "-c", "import sys, time; from w2v_jax import workdir_lock\n"
       f"with workdir_lock.hold({workdir!r}):\n  print('locked', flush=True); time.sleep(60)"],
      cwd=ROOT, stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(UserError, match=rf"in use by process {holder.pid} on "):
      with workdir_lock.hold(workdir):
        pass
  finally:
    holder.send_signal(signal.SIGKILL)
    holder.communicate()
  assert os.path.exists(Workdir(workdir).lock)
  with workdir_lock.hold(workdir):
    pass


def test_training_refuses_a_workdir_in_use_before_changing_it(tmp_path, monkeypatch) -> None:
  """train_and_evaluate on a locked workdir (even with restart=True) fails at once and leaves the other run's
  in-flight checkpoint alone."""
  monkeypatch.syspath_prepend(ROOT)
  from configs import tiny
  from w2v_jax import trainer

  workdir = tmp_path / "run"
  in_flight = workdir / "checkpoints" / "7.orbax-checkpoint-tmp-1"
  in_flight.mkdir(parents=True)
  config = tiny.get_config()
  config.corpus, config.restart = str(tmp_path / "corpus.txt"), True
  (tmp_path / "corpus.txt").write_text("a b c d e f\n" * 20)
  with workdir_lock.hold(str(workdir)):
    with pytest.raises(UserError, match="is in use by process"):
      trainer.train_and_evaluate(config, str(workdir))
  assert in_flight.is_dir() and sorted(os.listdir(workdir)) == [".lock", "checkpoints"]


def test_a_remote_workdir_is_refused_before_any_folder_is_made(tmp_path, monkeypatch) -> None:
  """gs://bucket/run is one line, not a local folder './gs:/bucket/run'."""
  monkeypatch.chdir(tmp_path)
  with pytest.raises(UserError, match="--workdir=gs://bucket/run: remote paths are not supported"):
    with workdir_lock.hold("gs://bucket/run"):
      pass
  assert list(tmp_path.iterdir()) == []
