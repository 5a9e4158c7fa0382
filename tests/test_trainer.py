"""The trainer's phases run one by one in process, as train_and_evaluate runs them (the Flax examples' train_test)."""

from __future__ import annotations

import json

import numpy as np

from configs import tiny
from w2v_jax import checkpointing, trainer, word2vec_format
from w2v_jax.workdir import Workdir


def _config(tmp_path):
  corpus = tmp_path / "corpus.txt"
  rng = np.random.default_rng(0)
  words = [f"w{i}" for i in range(40)]
  corpus.write_text("".join(" ".join(rng.choice(words, 12)) + "\n" for _ in range(150)))
  config = tiny.get_config()
  config.corpus = str(corpus)
  config.input = "numpy"
  return config


def test_phases_train_an_epoch_checkpoint_it_resume_and_finish(tmp_path) -> None:
  """prepare_data → build_run → restore_or_start → train_epoch → end_epoch → finish: the epoch reads every corpus
  token, its end saves the loop state as the checkpoint's metadata, a second run restores exactly that state and
  those tables, and finish writes the results and vectors of the epoch trained."""
  config = _config(tmp_path)
  workdir = Workdir(str(tmp_path / "run"))
  run = trainer.build_run(config, workdir, trainer.prepare_data(config, workdir))
  with run.services(exit_on_second_signal=False):
    state = trainer.restore_or_start(run)
    assert (state.loop.step, state.loop.epoch, state.loop.words) == (0, 0, 0)
    before = np.asarray(state.tables.input).copy()
    assert trainer.train_epoch(run, state)
    steps = state.loop.step
    assert steps > 1 and state.loop.words == run.data.vocab.total_tokens
    assert state.loop.positions == [[len(run.data.stream), run.data.vocab.total_tokens]]
    assert not trainer.end_epoch(run, state, on_epoch_end=None)
    assert (state.loop.epoch, state.loop.words, state.loop.positions) == (1, 0, [])
    trained = np.asarray(state.trained.input)
    assert not np.array_equal(trained, before)

  meta = json.loads((tmp_path / "run" / "checkpoints" / str(steps) / "meta" / "metadata").read_text())
  assert {k: meta[k] for k in ("step", "epoch", "words", "positions")} == {
      "step": steps, "epoch": 1, "words": 0, "positions": []}

  again = trainer.build_run(config, workdir, trainer.prepare_data(config, workdir))
  with again.services(exit_on_second_signal=False):
    resumed = trainer.restore_or_start(again)
    assert (resumed.loop.step, resumed.loop.epoch, resumed.loop.anchor) == (steps, 1, state.loop.anchor)
    np.testing.assert_array_equal(np.asarray(resumed.tables.input), trained)
  summary = trainer.finish(run, state)
  assert summary["steps"] == steps
  assert json.loads(open(workdir.results).read())["tables_sha256"] == summary["tables_sha256"]
  words, vectors = word2vec_format.read_word2vec(workdir.vectors_bin)
  assert words == run.data.vocab.words
  np.testing.assert_array_equal(vectors, trained)
  np.testing.assert_array_equal(checkpointing.latest_tables(workdir.path, len(words), config.dim).input, trained)
