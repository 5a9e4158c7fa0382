"""train.py on several (fake CPU) devices: same vectors as one device; checkpoints move between device counts."""

from __future__ import annotations

import os
import random
import subprocess
import sys

import numpy as np
import pytest

from w2v_jax import word2vec_format

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _train(corpus: str, workdir, devices: int, *extra: str) -> subprocess.CompletedProcess:
  env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3",
         "XLA_FLAGS": f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={devices}"}
  args = [sys.executable, "train.py", "--config", "configs/tiny.py", f"--workdir={workdir}",
          f"--config.corpus={corpus}", "--config.input=numpy", "--config.epochs=1",
          "--config.checkpoint_every_secs=0", *extra]
  return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, env=env, timeout=300, check=False)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> str:
  rng = random.Random(1)
  words = [f"w{i}" for i in range(200)]
  path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
  path.write_text("\n".join(" ".join(rng.choices(words, k=rng.randint(5, 40))) for _ in range(1500)))
  return str(path)


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["replicated", "sharded"])
def test_four_devices_train_the_same_vectors_as_one(corpus, tmp_path, layout) -> None:
  """The same config on 4 devices (either table layout) gives the 1-device vectors, up to float rounding."""
  one = _train(corpus, tmp_path / "one", 1)
  four = _train(corpus, tmp_path / "four", 4, f"--config.table_layout={layout}")
  assert one.returncode == 0, one.stderr[-2000:]
  assert four.returncode == 0, four.stderr[-2000:]
  assert "on 4 cpu device(s)" in four.stdout
  words1, vectors1 = word2vec_format.read_word2vec(tmp_path / "one" / "vectors.bin")
  words4, vectors4 = word2vec_format.read_word2vec(tmp_path / "four" / "vectors.bin")
  assert words1 == words4
  np.testing.assert_allclose(vectors4, vectors1, atol=1e-5)


@pytest.mark.slow
def test_checkpoint_moves_between_device_counts(corpus, tmp_path) -> None:
  """A 1-device checkpoint resumes on 4 devices (sharded tables) and that one back on 1 device."""
  workdir = tmp_path / "run"
  assert _train(corpus, workdir, 1).returncode == 0
  on_four = _train(corpus, workdir, 4, "--config.epochs=2", "--config.table_layout=sharded")
  assert on_four.returncode == 0, on_four.stderr[-2000:]
  assert "resumed from step" in on_four.stdout and "on 4 cpu device(s), tables sharded" in on_four.stdout
  back = _train(corpus, workdir, 1, "--config.epochs=3")
  assert back.returncode == 0, back.stderr[-2000:]
  assert "resumed from step" in back.stdout and "epoch 3" in back.stdout
  _, vectors = word2vec_format.read_word2vec(workdir / "vectors.bin")
  assert np.isfinite(vectors).all() and vectors.shape == (200, 16)


@pytest.mark.slow
def test_sharded_tables_train_a_large_vocabulary(tmp_path) -> None:
  """40,000 words on 4 devices with sharded tables: trains, exports every row, and the vectors move."""
  rng = random.Random(2)
  words = [f"v{i}" for i in range(40_000)]
  path = tmp_path / "big.txt"
  path.write_text("\n".join(" ".join(rng.sample(words, 30) + words[i:i + 20]) for i in range(0, 40_000, 20)))
  run = _train(str(path), tmp_path / "run", 4, "--config.table_layout=sharded", "--config.batch_size=4096",
               "--config.min_count=1", "--config.sample=0")
  assert run.returncode == 0, run.stderr[-2000:]
  assert "on 4 cpu device(s), tables sharded" in run.stdout
  got, vectors = word2vec_format.read_word2vec(tmp_path / "run" / "vectors.bin")
  assert len(got) == 40_000 and np.isfinite(vectors).all()
  assert np.abs(vectors).max() > 0.5 / 16  # beyond the initial U(-0.5/D, 0.5/D): rows were updated
