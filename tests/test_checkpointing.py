"""Checkpoints: kill -9 and SIGTERM resumes are bitwise exact, damaged checkpoints are moved aside and skipped,
a failed save is one error line, a wrong resume is refused, changing epochs continues the learning rate."""

from __future__ import annotations

import errno
import importlib.util
import json
import logging
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time

import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

from w2v_jax import checkpointing, keyed_vectors, loop_state, settings
from w2v_jax.errors import UserError
from w2v_jax.model import Tables
from w2v_jax.vocab import Vocab

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _corpus(path) -> str:
  rng = random.Random(0)
  words = [f"w{i}" for i in range(300)]
  lines = (" ".join(rng.choices(words, k=rng.randint(5, 40))) for _ in range(3000))
  path.write_text("\n".join(lines))
  return str(path)


def _args(corpus: str, workdir, *extra: str) -> list[str]:
  return [sys.executable, "train.py", "--config", "configs/tiny.py", f"--workdir={workdir}",
          f"--config.corpus={corpus}", "--config.epochs=3", "--config.input=numpy",
          "--config.checkpoint_every_steps=10", "--config.checkpoint_every_secs=0", *extra]


def _env() -> dict:
  return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}


def _run(args: list[str]) -> subprocess.CompletedProcess:
  return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, env=_env(), timeout=300, check=False)


def _steps(workdir) -> list[int]:
  directory = os.path.join(workdir, "checkpoints")
  return sorted(int(n) for n in os.listdir(directory) if n.isdigit()) if os.path.isdir(directory) else []


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  """An uninterrupted run: (corpus path, its vectors.bin bytes)."""
  tmp = tmp_path_factory.mktemp("reference")
  corpus = _corpus(tmp / "corpus.txt")
  result = _run(_args(corpus, tmp / "run"))
  assert result.returncode == 0, result.stderr[-2000:]
  return corpus, (tmp / "run" / "vectors.bin").read_bytes()


@pytest.mark.slow
def test_kill_9_then_resume_is_bitwise_identical(reference, tmp_path) -> None:
  """A run killed with SIGKILL after a checkpoint, then resumed, ends with the same tables bit for bit."""
  corpus, expected = reference
  workdir = tmp_path / "run"
  process = subprocess.Popen(_args(corpus, workdir), cwd=ROOT, env=_env(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  deadline = time.time() + 240
  while not [s for s in _steps(workdir) if s >= 30] and process.poll() is None and time.time() < deadline:
    time.sleep(0.05)
  process.send_signal(signal.SIGKILL)
  process.wait()
  assert not (workdir / "vectors.bin").exists(), "the run finished before it could be killed"
  result = _run(_args(corpus, workdir))
  assert result.returncode == 0, result.stderr[-2000:]
  assert "resumed from step" in result.stdout
  assert (workdir / "vectors.bin").read_bytes() == expected


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_and_resume_is_identical(reference, tmp_path) -> None:
  """SIGTERM checkpoints the current step and exits cleanly; the same command then finishes the same run."""
  corpus, expected = reference
  workdir = tmp_path / "run"
  process = subprocess.Popen(_args(corpus, workdir, "--config.checkpoint_every_steps=0"), cwd=ROOT, env=_env(),
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
  for line in process.stdout:
    if line.startswith("epoch 1/3"):
      break
  process.send_signal(signal.SIGTERM)
  out, _ = process.communicate(timeout=120)
  assert process.returncode == 75  # stopped, resumable (train.EXIT_STOPPED)
  assert "stopped at step" in out
  step = int(out.split("stopped at step ")[1].split(";")[0])
  assert step in _steps(workdir)
  evaluated = subprocess.run([sys.executable, "eval.py", f"--workdir={workdir}", "--no_bundled", "--neighbors=w1"],
                             cwd=ROOT, capture_output=True, text=True, env=_env(), timeout=120, check=False)
  assert evaluated.returncode == 0 and f"checkpoints/{step} (latest): 300 words, dimension 16" in evaluated.stdout
  evaluated = subprocess.run([sys.executable, "eval.py", f"--workdir={workdir}", "--no_bundled", "--wplusc",
                              f"--export_tsv={tmp_path / 'tsv'}"],
                             cwd=ROOT, capture_output=True, text=True, env=_env(), timeout=120, check=False)
  assert evaluated.returncode == 0 and f"checkpoints/{step} (latest, w+c)" in evaluated.stdout
  assert len((tmp_path / "tsv" / "metadata.tsv").read_text().splitlines()) == 300
  result = _run(_args(corpus, workdir))
  assert result.returncode == 0, result.stderr[-2000:]
  assert f"resumed from step {step}:" in result.stdout
  assert (workdir / "vectors.bin").read_bytes() == expected


@pytest.mark.slow
def test_wrong_resume_is_refused_and_safe_changes_are_allowed(reference, tmp_path) -> None:
  """dim/model/corpus changes are refused with one line listing them; logging changes resume."""
  corpus, _ = reference
  workdir = tmp_path / "run"
  assert _run(_args(corpus, workdir, "--config.epochs=1")).returncode == 0
  result = _run(_args(corpus, workdir, "--config.epochs=1", "--config.dim=8", "--config.model=cbow"))
  assert result.returncode == 2
  errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
  assert len(errors) == 1 and "dim: checkpoint 16, now 8" in errors[0] and "model:" in errors[0]
  assert "Traceback" not in result.stderr
  result = _run(_args(corpus, workdir, "--config.epochs=1", "--config.log_every_steps=7"))
  assert result.returncode == 0 and "resumed from step" in result.stdout
  vocab_before = (workdir / "vocab.tsv").read_bytes()
  other = tmp_path / "other.txt"
  shutil.copy(corpus, other)
  with open(other, "a") as f:
    f.write("\nw1 w2 w3\n")
  result = _run(_args(str(other), workdir, "--config.epochs=1"))
  assert result.returncode == 2 and "files: checkpoint" in result.stderr
  assert (workdir / "vocab.tsv").read_bytes() == vocab_before
  # The finished run given one more epoch trains it from alpha again, not at min_alpha.
  result = _run(_args(corpus, workdir, "--config.epochs=2", "--config.log_every_steps=1"))
  assert result.returncode == 0, result.stderr[-2000:]
  rates = [float(m) for m in re.findall(r"lr (\d\.\d+)", result.stdout)]
  assert rates and rates[0] > 0.9 * settings.resolve_alpha(_tiny()) and rates[-1] < 0.2 * rates[0], rates


def _tiny():
  spec = importlib.util.spec_from_file_location("tiny", os.path.join(ROOT, "configs", "tiny.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def _tables(value: float) -> Tables:
  return Tables(jnp.full((50, 4), value), jnp.full((50, 4), -value))


def test_damaged_latest_checkpoint_falls_back_to_previous(tmp_path, capsys) -> None:
  """A truncated latest checkpoint is reported in one line, moved to damaged/, the previous one restores, and
  training can save that step again (it used to fail with StepAlreadyExistsError on every rerun)."""
  ckpt = checkpointing.Checkpointer(str(tmp_path), keep=3, every_steps=0, every_secs=0)
  ckpt.save(1, _tables(1.0), {"epoch": 0})
  ckpt.save(2, _tables(2.0), {"epoch": 0})
  ckpt.close()
  damaged = 0
  for folder, _, files in os.walk(tmp_path / "checkpoints" / "2" / "tables"):
    for name in files:
      path = os.path.join(folder, name)
      with open(path, "r+b") as f:
        size = os.path.getsize(path)
        f.truncate(size // 2)
        damaged += 1
  assert damaged
  ckpt = checkpointing.Checkpointer(str(tmp_path), keep=3, every_steps=0, every_secs=0)
  tables, meta = ckpt.restore_latest(_tables(0.0))
  assert meta["step"] == 1 and float(tables.input[0, 0]) == 1.0
  ckpt.save(2, _tables(3.0), {"epoch": 0})
  ckpt.close()
  assert _steps(tmp_path) == [1, 2] and os.listdir(tmp_path / "checkpoints" / "damaged") == ["2"]
  reports = [line for line in capsys.readouterr().out.splitlines() if "damaged" in line]
  assert len(reports) == 1 and "/checkpoints/2 is damaged" in reports[0]
  assert reports[0].endswith(f"moved it to {tmp_path}/checkpoints/damaged/2; trying the previous one")


def test_checkpoint_being_written_is_ignored(tmp_path) -> None:
  """An unfinished (temporary) checkpoint directory left by a crash is never restored."""
  ckpt = checkpointing.Checkpointer(str(tmp_path), keep=3, every_steps=0, every_secs=0)
  ckpt.save(1, _tables(1.0), {"epoch": 0})
  ckpt.close()
  shutil.copytree(tmp_path / "checkpoints" / "1", tmp_path / "checkpoints" / "5.orbax-checkpoint-tmp-1234")
  ckpt = checkpointing.Checkpointer(str(tmp_path), keep=3, every_steps=0, every_secs=0)
  _, meta = ckpt.restore_latest(_tables(0.0))
  ckpt.close()
  assert meta["step"] == 1


def _meta_path(workdir, step: int):
  return workdir / "checkpoints" / str(step) / "meta" / "metadata"


def test_single_bit_flip_in_table_data_is_detected(tmp_path, capsys) -> None:
  """Tables one bit off the checksum saved with them are damaged (sums compared within rtol=1e-5 let a low bit
  pass); a checkpoint saved before checksums existed is still checked by its fingerprint."""
  good = _tables(1.0)
  flipped = np.asarray(good.input).copy()
  flipped.view(np.uint32)[3, 2] ^= 1
  ckpt = checkpointing.Checkpointer(str(tmp_path), keep=3, every_steps=0, every_secs=0)
  ckpt.save(1, good, {"epoch": 0})
  ckpt.save(2, good._replace(input=jnp.asarray(flipped)), {"epoch": 0})
  ckpt.close()
  first = json.loads(_meta_path(tmp_path, 1).read_text())
  second = json.loads(_meta_path(tmp_path, 2).read_text())
  second.update({k: first[k] for k in ("checksum", "fingerprint") if k in first})  # claims step 1's tables
  _meta_path(tmp_path, 2).write_text(json.dumps(second))
  legacy = {k: v for k, v in first.items() if k != "checksum"}
  _meta_path(tmp_path, 1).write_text(json.dumps({**legacy, "fingerprint": checkpointing.fingerprint(good).tolist()}))
  ckpt = checkpointing.Checkpointer(str(tmp_path), keep=3, every_steps=0, every_secs=0)
  _, meta = ckpt.restore_latest(_tables(0.0))
  ckpt.close()
  assert meta["step"] == 1
  assert "checkpoints/2 is damaged (its tables do not match the checksum saved with them)" in capsys.readouterr().out


def test_full_disk_at_a_checkpoint_is_one_error_line(tmp_path, monkeypatch, caplog) -> None:
  """A save that fails for lack of space in Orbax's background thread is one UserError naming the checkpoint and
  the fix, without Orbax's logged tracebacks; the finished checkpoint stays (even with keep=1)."""
  ckpt = checkpointing.Checkpointer(str(tmp_path), keep=1, every_steps=0, every_secs=0)
  ckpt.save(1, _tables(1.0), {"epoch": 0})
  ckpt.wait()

  async def no_space(self, item, directory) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(directory))

  monkeypatch.setattr(ocp.JsonCheckpointHandler, "_save_fn", no_space)
  expected = r"checkpoints/2 could not be written \(No space left on device\); free space in .*/checkpoints"
  with pytest.raises(UserError, match=expected):
    try:
      ckpt.save(2, _tables(2.0), {"epoch": 0})
    finally:
      ckpt.close()
  monkeypatch.undo()
  assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
  ckpt = checkpointing.Checkpointer(str(tmp_path), keep=1, every_steps=0, every_secs=0)
  tables, meta = ckpt.restore_latest(_tables(0.0))
  ckpt.close()
  assert meta["step"] == 1 and float(tables.input[0, 0]) == 1.0


def test_all_checkpoints_damaged_says_training_starts_over(tmp_path, capsys) -> None:
  """When no checkpoint restores, one line says so and that training starts from step 0."""
  ckpt = checkpointing.Checkpointer(str(tmp_path), keep=3, every_steps=0, every_secs=0)
  ckpt.save(1, _tables(1.0), {"epoch": 0})
  ckpt.save(2, _tables(2.0), {"epoch": 0})
  ckpt.close()
  for step in (1, 2):
    _meta_path(tmp_path, step).write_text("{garbage")
  ckpt = checkpointing.Checkpointer(str(tmp_path), keep=3, every_steps=0, every_secs=0)
  assert ckpt.restore_latest(_tables(0.0)) is None
  ckpt.close()
  directory = tmp_path / "checkpoints"
  assert capsys.readouterr().out.splitlines()[-1] == (
      f"no checkpoint in {directory} could be restored (all 2 damaged, moved to {directory}/damaged); "
      "training starts over from step 0")
  assert _steps(tmp_path) == []


def test_eval_names_the_checkpoint_it_used(tmp_path) -> None:
  """eval.py --workdir labels a fallback with its step and the damaged newer one (not "latest"), and only reads."""
  Vocab([f"w{i}" for i in range(50)], np.arange(50, 0, -1), 1275).save(str(tmp_path))
  (tmp_path / "config.json").write_text(json.dumps({"dim": 4}))
  ckpt = checkpointing.Checkpointer(str(tmp_path), keep=3, every_steps=0, every_secs=0)
  ckpt.save(1, _tables(1.0), {"epoch": 0})
  ckpt.save(2, _tables(2.0), {"epoch": 0})
  ckpt.close()
  _meta_path(tmp_path, 2).write_text("{garbage")
  path, words, vectors = keyed_vectors.load_workdir(str(tmp_path))  # what eval.py --workdir reads
  assert path == f"{tmp_path}/checkpoints/1 (newer 2 damaged)" and len(words) == 50 and vectors[0, 0] == 1.0
  assert _steps(tmp_path) == [1, 2]


def test_check_resume_lists_every_difference() -> None:
  """check_resume names each differing field and ignores the fields that may change."""
  saved = {"dim": 100, "model": "skipgram", "epochs": 5, "log_every_steps": 10, "vocab_sha256": "a"}
  checkpointing.check_resume(saved, {**saved, "epochs": 9, "log_every_steps": 3})
  with pytest.raises(UserError, match="dim: checkpoint 100, now 50.*vocab_sha256"):
    checkpointing.check_resume(saved, {**saved, "dim": 50, "vocab_sha256": "b"})


def test_learning_rate_continues_from_anchor_when_epochs_change() -> None:
  """The schedule is linear from its anchor to min_alpha at the end; a new anchor avoids any jump. Past 2**31
  words (a billion-word corpus over a few epochs) it neither overflows nor jumps."""
  total, alpha, min_alpha = 1000, 0.025, 1e-4

  def lr(words: float, anchor: tuple, total_words: int) -> float:
    return float(loop_state.lr_schedule(anchor, total_words, min_alpha)(np.float32(words)))

  assert lr(0, (0, alpha), total) == pytest.approx(alpha)
  assert lr(total, (0, alpha), total) == pytest.approx(min_alpha)
  lr_now = lr(600, (0, alpha), total)
  anchor = (600, lr_now)  # resumed with twice the epochs
  assert lr(600, anchor, 2 * total) == pytest.approx(lr_now)
  assert lr(2 * total, anchor, 2 * total) == pytest.approx(min_alpha)
  assert np.isclose(lr(1300, anchor, 2 * total), (lr_now + min_alpha) / 2)
  huge = 5 * 10**9
  assert lr(3 * 10**9, (10**9, alpha), huge) == pytest.approx(alpha - (alpha - min_alpha) * 0.5, rel=1e-5)
  assert lr(huge + 10**9, (10**9, alpha), huge) == pytest.approx(min_alpha)
