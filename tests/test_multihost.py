"""Several processes through jax.distributed: host shards, config checks, and two local CPU processes
(two devices each) that train one model, get killed after a checkpoint, resume and agree on the tables.

The two-process case runs this file as a worker script (`python test_multihost.py WORKDIR OUT k=v ...`)
that calls trainer.train_and_evaluate and writes its summary (with the tables' sha256) to OUT.
"""

from __future__ import annotations

import ast
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEP = -1


def test_shards_are_disjoint_cover_the_stream_and_cut_at_sentence_ends() -> None:
  """shard_bounds: consecutive ranges from 0 to the end, each starting after a SEP; words_before counts."""
  from w2v_jax import distributed

  rng = np.random.default_rng(0)
  stream = rng.integers(0, 50, 5000).astype(np.int32)
  stream[rng.random(5000) < 0.05] = SEP
  for n in (1, 2, 3, 7):
    bounds = distributed.shard_bounds(stream, n)
    assert len(bounds) == n and bounds[0][0] == 0 and bounds[-1][1] == len(stream)
    assert all(end == next_start for (_, end), (next_start, _) in zip(bounds, bounds[1:]))
    assert all(start == 0 or stream[start - 1] == SEP for start, _ in bounds)
    sizes = [end - start for start, end in bounds]
    assert max(sizes) - min(sizes) < 200, sizes  # balanced up to a few sentences
    for start, _ in bounds:
      assert distributed.words_before(stream, start, chunk=97) == np.count_nonzero(stream[:start] != SEP)
  one_sentence = np.array([3, 4, 5, 6, 7, SEP], np.int32)
  assert distributed.shard_bounds(one_sentence, 2) == [(0, 6), (6, 6)]  # an empty shard pads every step


def test_padding_batches_train_nothing_and_plan_sums_words() -> None:
  """A short host's extra steps are all-SEP; the plan (one process) counts words from the shard start."""
  from w2v_jax import feed

  batches = [{"tokens": np.ones([2, 4], np.int32)}]
  padded = list(feed.pad_batches(iter(batches), 3, 2, 4))
  assert len(padded) == 3 and (padded[1]["tokens"] == SEP).all() and (padded[2]["tokens"] == SEP).all()
  plan = feed.agree_plan(np.array([[10, 108], [20, 115]]), (5, 100), 100)
  assert plan.steps == 2 and plan.words.tolist() == [8, 15]
  assert plan.positions.shape == (2, 1, 2) and plan.positions[1, 0].tolist() == [20, 115]


@pytest.mark.parametrize("fields, message", [
    ({"num_processes": 2}, "need config.coordinator_address"),
    ({"coordinator_address": "h:1", "num_processes": 2, "process_id": 2}, "config.process_id=2 must be in 0..1"),
    ({"coordinator_address": "h:1", "process_id": 0}, "config.num_processes=0 must be >= 1"),
    ({"coordinator_address": "auto", "num_processes": 2, "process_id": 5}, "config.process_id=5"),
])
def test_bad_process_settings_are_one_line_errors(fields, message) -> None:
  from configs import default
  from w2v_jax import distributed
  from w2v_jax.errors import UserError

  config = default.get_config()
  config.update(fields)
  with pytest.raises(UserError, match=message):
    distributed.check_config(config)


def _initialize_in_child(fields: dict) -> subprocess.Popen:
  """distributed.initialize(tiny config + fields) in a child process, under exit_on_user_error as train.py runs it."""
  code = ("from configs import tiny\nfrom w2v_jax import distributed, logs\n"
          "from w2v_jax.errors import exit_on_user_error\n"
          f"logs.setup()\nconfig = tiny.get_config()\nconfig.update({fields!r})\n"
          "exit_on_user_error(distributed.initialize)(config)\n")
  env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "OMPI_", "TPU_"))}  # no cluster to detect
  env.update(JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT, PYTHONUNBUFFERED="1")
  return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)


def test_unreachable_or_undetectable_coordinator_is_one_error_line() -> None:
  """Nothing listening on the coordinator's port (127.0.0.1): one line saying what the process waits for, then,
  after coordinator_timeout_secs, one error line and status 2 (JAX alone waited 5 minutes, then aborted in C++).
  'auto' with no cluster to detect: one error line at once (was a ValueError)."""
  port = _free_port()
  start = time.time()
  waiting = _initialize_in_child({"coordinator_address": f"127.0.0.1:{port}", "num_processes": 2, "process_id": 1,
                                  "coordinator_timeout_secs": 2})
  auto = _initialize_in_child({"coordinator_address": "auto"})
  (out, err), (_, auto_err) = waiting.communicate(timeout=60), auto.communicate(timeout=60)
  assert time.time() - start < 30
  assert waiting.returncode == 2 and auto.returncode == 2, err + auto_err
  where = f"coordinator 127.0.0.1:{port} (process 1 of 2)"
  assert out.splitlines() == [f"connecting to {where}, up to 2 s"]
  assert _error_lines(err) == [f"error: no answer from {where} within 2 s (config.coordinator_timeout_secs): start "
                               "every process, check coordinator_address (process 0's host:port) and the network"]
  errors = _error_lines(auto_err)
  assert len(errors) == 1 and errors[0].startswith("error: config.coordinator_address='auto': "), auto_err


def _error_lines(stderr: str) -> list[str]:
  """stderr without the log lines (I/W/E/F + date) that XLA's C++ may print."""
  return [line for line in stderr.splitlines() if line.strip() and not re.match(r"[IWEF]\d{4} ", line)]


# ---- two processes ----


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _launch(workdir, corpus: str, port: int, *extra: str, devices: int = 2) -> list[subprocess.Popen]:
  """Starts the two processes of one run, each with `devices` CPU devices."""
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_NUM_CPU_DEVICES": str(devices), "TF_CPP_MIN_LOG_LEVEL": "3",
         "PYTHONPATH": ROOT, "PYTHONUNBUFFERED": "1",
         "XLA_FLAGS": f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={devices}".strip()}
  return [subprocess.Popen(
      [sys.executable, __file__, str(workdir), str(workdir / f"summary{pid}.json"), f"corpus={corpus}",
       f"coordinator_address=127.0.0.1:{port}", "num_processes=2", f"process_id={pid}", "input=numpy",
       "checkpoint_every_steps=2", "checkpoint_every_secs=0", "batch_size=1024", *extra],
      cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for pid in (0, 1)]


def _finish(procs: list[subprocess.Popen]) -> list[str]:
  """Both processes' stdout; fails with their stderr if one failed (skips if CPU collectives are missing)."""
  outputs = [p.communicate(timeout=240) for p in procs]
  for p, (_, stderr) in zip(procs, outputs):
    if p.returncode and ("gloo" in stderr.lower() or "collectives" in stderr.lower()) and "Traceback" in stderr:
      pytest.skip(f"jax.distributed CPU collectives are unavailable: {stderr.strip().splitlines()[-1]}")
    assert p.returncode == 0, stderr[-3000:]
  return [stdout for stdout, _ in outputs]


def _checkpoints(workdir) -> list[int]:
  directory = workdir / "checkpoints"
  return sorted(int(n) for n in os.listdir(directory) if n.isdigit()) if directory.is_dir() else []


def test_two_processes_of_one_device_each_train(tmp_path) -> None:
  """One CPU device per process, as on two plain hosts: the tables span both processes with one shard on each
  (host-side buffer tweaks must leave such arrays alone); both finish and process 0 writes the vectors."""
  corpus = tmp_path / "corpus.txt"
  rng = random.Random(3)
  corpus.write_text("\n".join(" ".join(rng.choices([f"w{i}" for i in range(60)], k=20)) for _ in range(300)))
  out0, _ = _finish(_launch(tmp_path / "run", str(corpus), _free_port(), "epochs=1", devices=1))
  assert "on 2 cpu device(s) of 2 processes" in out0 and (tmp_path / "run" / "vectors.bin").exists(), out0


@pytest.mark.slow
def test_two_processes_train_kill_resume_and_agree(tmp_path) -> None:
  """Two processes each read their share of the files, train on their shards, are SIGKILLed after a checkpoint,
  resume mid-epoch, and end with the same tables on both, bit for bit those of an uninterrupted run; only
  process 0 prints and writes."""
  rng = random.Random(2)
  words = [f"w{i}" for i in range(150)]
  corpus = tmp_path / "corpus"
  corpus.mkdir()
  for i, lines in enumerate([500, 300, 400]):
    (corpus / f"part{i}.txt").write_text(
        "\n".join(" ".join(rng.choices(words, k=rng.randint(3, 30))) for _ in range(lines)))
  workdir = tmp_path / "run"

  reference = _launch(tmp_path / "reference", str(corpus), _free_port())  # uninterrupted, alongside
  procs = _launch(workdir, str(corpus), _free_port())
  deadline = time.time() + 120
  while not [s for s in _checkpoints(workdir) if s >= 4] and time.time() < deadline:
    if any(p.poll() is not None for p in procs):
      _finish(procs)  # exited early: report why
      pytest.fail("the run finished before it could be killed")
    time.sleep(0.05)
  for p in procs:
    p.send_signal(signal.SIGKILL)
    p.communicate()
  assert not (workdir / "vectors.bin").exists()
  for step in _checkpoints(workdir):  # as if killed right after step 4 (mid-epoch), whatever the timing
    if step > 4:
      shutil.rmtree(workdir / "checkpoints" / str(step))
  _check_sharded_reading(workdir, sorted(str(p) for p in corpus.iterdir()))
  positions = _meta(workdir, 4)["positions"]
  assert len(positions) == 2 and positions[0][0] < positions[1][0], positions  # each host's own place

  out0, out1 = _finish(_launch(workdir, str(corpus), _free_port()))
  assert "resumed from step 4: epoch 1" in out0 and "on 4 cpu device(s) of 2 processes" in out0, out0
  assert "vectors in" in out0
  assert "epoch" not in out1 and "resumed" not in out1, out1  # process 1 stays quiet
  s0, s1 = (json.loads((workdir / f"summary{pid}.json").read_text()) for pid in (0, 1))
  assert s0["tables_sha256"] == s1["tables_sha256"]
  _finish(reference)
  expected = json.loads((tmp_path / "reference" / "summary1.json").read_text())
  assert s0["tables_sha256"] == expected["tables_sha256"] and s0["steps"] == expected["steps"]
  assert s0["steps"] == s1["steps"] > 6
  results = json.loads((workdir / "results.json").read_text())
  assert results["tables_sha256"] == s0["tables_sha256"]
  last = _meta(workdir, _checkpoints(workdir)[-1])
  assert last["epoch"] == 2 and last["positions"] == [] and last["step"] == s0["steps"]


def _check_sharded_reading(workdir, files: list[str]) -> None:
  """Each process tokenized its own files (500 lines, then 300 + 400) into its own cache file, and together
  they hold the vocabulary and token stream that one process makes from all the files."""
  from w2v_jax import corpus, input_pipeline, vocab

  saved = json.loads((workdir / "vocab.json").read_text())
  assert saved["token_cache"] == ["tokens-00000-of-00002.i32", "tokens-00001-of-00002.i32"]
  parts = [input_pipeline.read_token_cache(str(workdir / name)) for name in saved["token_cache"]]
  assert [int(np.sum(np.asarray(p) == SEP)) for p in parts] == [500, 700]  # a SEP ends every line
  whole = vocab.build_vocab(corpus.FileCorpus(files), True, min_count=1)
  assert vocab.Vocab.load(str(workdir)).words == whole.words
  np.testing.assert_array_equal(np.concatenate([np.asarray(p) for p in parts]),
                                input_pipeline.tokenize(corpus.FileCorpus(files), whole, True))
  assert not (workdir / "vocab_counts").exists()  # merged, then removed


def _meta(workdir, step: int) -> dict:
  return json.loads((workdir / "checkpoints" / str(step) / "meta" / "metadata").read_text())


def _worker(workdir: str, out: str, overrides: list[str]) -> None:
  """One process of a multi-process run: tiny config with k=v overrides, summary JSON to out."""
  sys.path.insert(0, ROOT)
  from configs import tiny
  from w2v_jax import logs, trainer

  logs.setup()  # the messages on stdout, as train.py shows them
  config = tiny.get_config()
  for item in overrides:
    key, value = item.split("=", 1)
    try:
      config[key] = ast.literal_eval(value)
    except (ValueError, SyntaxError):
      config[key] = value
  summary = trainer.train_and_evaluate(config, workdir)
  with open(out, "w") as f:
    json.dump(summary, f)


if __name__ == "__main__":
  _worker(sys.argv[1], sys.argv[2], sys.argv[3:])
