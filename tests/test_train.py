"""Training end to end: bad inputs fail cleanly, planted structure is learned, train.py writes its outputs."""

from __future__ import annotations

import importlib
import json
import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent

# Lines TensorFlow/absl/XLA may print on stderr whatever happens; not part of the program's output.
_NOISE = re.compile(r"^([IWEF]\d{4} |WARNING: All log messages before absl|To enable the following instructions)"
                    r"|oneDNN|TensorFlow")


def meaningful_lines(stderr: str) -> list[str]:
  return [line for line in stderr.splitlines() if line.strip() and not _NOISE.search(line)]


def train_command(workdir: str, *overrides: str) -> list[str]:
  return [sys.executable, "train.py", "--config", "configs/tiny.py", "--workdir", workdir, *overrides]


def subprocess_env() -> dict[str, str]:
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", JAX_PLATFORMS="cpu")
  env.pop("PYTHONPATH", None)
  return env


def synthetic_corpus(n_tokens: int, groups: list[list[str]], seed: int = 0) -> str:
  """Sentences of 5-15 words, each drawn from a single group."""
  rng = np.random.default_rng(seed)
  lines, total = [], 0
  while total < n_tokens:
    group = groups[int(rng.integers(len(groups)))]
    length = int(rng.integers(5, 16))
    lines.append(" ".join(group[i] for i in rng.integers(0, len(group), length)))
    total += length
  return "\n".join(lines) + "\n"


# case -> (overrides, a word the error line must contain); {corpus}/{tmp} are filled in.
BAD_INPUTS = {
    "missing_corpus": (["--config.corpus={tmp}/nope.txt"], "nope.txt"),
    "empty_corpus": (["--config.corpus={tmp}/empty.txt"], "empty"),
    "empty_directory": (["--config.corpus={corpus},{tmp}/empty_dir"], "holds no files"),
    "min_count_unreached": (["--config.corpus={corpus}", "--config.min_count=1000"], "min_count"),
    "dim_0": (["--config.corpus={corpus}", "--config.dim=0"], "dim"),
    "window_0": (["--config.corpus={corpus}", "--config.window=0"], "window"),
    "negative_-1": (["--config.corpus={corpus}", "--config.negative=-1"], "negative"),
    "sample_-0.1": (["--config.corpus={corpus}", "--config.sample=-0.1"], "sample"),
    "model_foo": (["--config.corpus={corpus}", "--config.model=foo"], "model"),
    "batch_not_multiple": (["--config.corpus={corpus}", "--config.batch_size=100"], "batch_size"),
    "unwritable_workdir": (["--config.corpus={corpus}"], "workdir"),
}


@pytest.fixture(scope="module")
def bad_runs(tmp_path_factory) -> dict[str, subprocess.CompletedProcess]:
  """Runs train.py once per bad input, all at once (each run is mostly interpreter start-up)."""
  tmp = tmp_path_factory.mktemp("bad")
  corpus = tmp / "corpus.txt"
  corpus.write_text(synthetic_corpus(500, [[f"w{i}" for i in range(10)]]))
  (tmp / "empty.txt").write_text("")
  (tmp / "empty_dir").mkdir()
  (tmp / "a_file").write_text("not a directory")
  procs = {}
  for case, (overrides, _) in BAD_INPUTS.items():
    workdir = tmp / "a_file" / "run" if case == "unwritable_workdir" else tmp / case
    args = [o.format(corpus=corpus, tmp=tmp) for o in overrides]
    procs[case] = subprocess.Popen(train_command(str(workdir), *args), cwd=REPO, env=subprocess_env(),
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  results = {}
  for case, proc in procs.items():
    out, err = proc.communicate(timeout=300)
    results[case] = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
  return results


@pytest.mark.slow  # the shared fixture starts eleven interpreters
@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_exits_2_with_one_error_line(bad_runs, case: str) -> None:
  """Every bad input: exit status 2, exactly one 'error: ...' line on stderr naming the problem, no traceback."""
  run = bad_runs[case]
  lines = meaningful_lines(run.stderr)
  assert run.returncode == 2, run.stderr
  assert len(lines) == 1 and lines[0].startswith("error: "), run.stderr
  assert BAD_INPUTS[case][1] in lines[0]
  assert "Traceback" not in run.stderr + run.stdout


# case -> (arguments, what the error line must contain): mistakes train.py finds before JAX loads.
BAD_FLAGS = {
    "dim_abc": (["--config.dim=abc"], "--config.dim=abc"),
    "dim_1.5": (["--config.dim=1.5"], "--config.dim=1.5"),
    "alpha_fast": (["--config.alpha=fast"], "--config.alpha=fast"),
    "lowercase_maybe": (["--config.lowercase=maybe"], "--config.lowercase=maybe"),
    "unknown_field": (["--config.nope=3"], "no config field 'nope'"),
    "gensim_name": (["--config.vector_size=50"], "no config field 'vector_size'; here it is dim"),
    "typo": (["--config.windw=3"], "no config field 'windw'; did you mean --config.window?"),
    "extra_argument": (["extra"], "unexpected arguments 'extra'"),
    "missing_config": (["--config=configs/nope.py"], "configs/nope.py: no such config file"),
}


def test_unknown_field_of_the_default_config_is_one_line(tmp_path) -> None:
  """Without --config (the default config file) an unknown field is one line too: ml_collections must not load
  the default, and apply the overrides, while train.py is imported."""
  run = subprocess.run([sys.executable, "train.py", f"--workdir={tmp_path / 'run'}", "--config.sg=1"], cwd=REPO,
                       env=subprocess_env(), capture_output=True, text=True, timeout=120, check=False)
  assert run.returncode == 2, run.stderr
  assert meaningful_lines(run.stderr) == [
      "error: --config.sg: no config field 'sg'; here it is model: --config.model=skipgram (sg=1) or "
      "--config.model=cbow (sg=0) (the fields: configs/default.py)"]


@pytest.mark.parametrize("case", list(BAD_FLAGS))
def test_bad_flag_exits_2_with_one_error_line(tmp_path, case: str) -> None:
  """A bad flag value, config field, config file or argument: status 2 and one 'error:' line (absl's own handler
  exits 1 with its usage text), and no workdir made."""
  args, expected = BAD_FLAGS[case]
  run = subprocess.run(train_command(str(tmp_path / "run"), *args), cwd=REPO, env=subprocess_env(),
                       capture_output=True, text=True, timeout=120, check=False)
  lines = meaningful_lines(run.stderr)
  assert run.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), run.stderr
  assert expected in lines[0]
  assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("field, value, message", [
    ("block_length", 0, r"config\.block_length=0 must be > 2 \* window"),  # was a ZeroDivisionError
    ("seed", 10**23, r"config\.seed=100000000000000000000000 must be in \[-2\*\*63, 2\*\*63\)"),  # OverflowError later
    ("coordinator_timeout_secs", 0, r"config\.coordinator_timeout_secs=0 must be >= 1"),
])
def test_values_that_failed_later_are_refused_up_front(tiny_config, field: str, value: int, message: str) -> None:
  """validate_config refuses them in one line, before the vocabulary is written."""
  from w2v_jax import settings
  from w2v_jax.errors import UserError

  tiny_config[field] = value
  with pytest.raises(UserError, match=message):
    settings.validate_config(tiny_config)


def test_tables_too_large_for_memory_are_refused_before_allocation(tiny_config) -> None:
  """dim=1e9 is refused in one line naming dim and max_vocab_size (it was XLA's RESOURCE_EXHAUSTED)."""
  from w2v_jax import settings
  from w2v_jax.errors import UserError

  tiny_config.dim = 10**9
  with pytest.raises(UserError, match=r"config\.dim=1000000000 with 1000 words needs about [\d,.]+ GiB .* "
                                      r"are 7,451 GiB.*--config\.max_vocab_size"):
    settings.check_memory(tiny_config, 1000)
  tiny_config.dim = 16
  settings.check_memory(tiny_config, 1000)


def test_tables_are_checked_against_an_accelerators_memory(tiny_config, monkeypatch) -> None:
  """On a device that reports its memory (GPU, TPU) the check is per device: twice the tables and a step's buffers."""
  from w2v_jax import settings
  from w2v_jax.errors import UserError

  class Device:
    platform = "gpu"

    def memory_stats(self) -> dict:
      return {"bytes_limit": 1 << 30}

  monkeypatch.setattr(settings.jax, "local_devices", lambda: [Device(), Device()])
  tiny_config.dim = 100
  settings.check_memory(tiny_config, 500_000)  # 0.4 GiB of tables: 0.8 GiB with evaluation's copy
  with pytest.raises(UserError, match=r"with 1000000 words needs about 1\.5 GiB .* but a gpu device holds 1\.0 GiB"):
    settings.check_memory(tiny_config, 1_000_000)


@pytest.mark.parametrize("summary, status", [({"stopped_at_step": 3}, 75), ({"steps": 9}, 0)])
def test_train_py_exits_75_when_stopped_and_0_when_finished(tmp_path, summary: dict, status: int) -> None:
  """A run stopped by SIGTERM (checkpointed, resumable) and a finished run exit differently: train.py's mapping
  of the trainer's summary, with a stand-in trainer (test_checkpointing sends the real SIGTERM)."""
  stand_in = ("import runpy, sys, types, w2v_jax\n"
              "fake = types.ModuleType('w2v_jax.trainer')\n"
              f"fake.train_and_evaluate = lambda config, workdir: {summary!r}\n"
              "sys.modules['w2v_jax.trainer'] = w2v_jax.trainer = fake\n"
              "runpy.run_path('train.py', run_name='__main__')\n")
  run = subprocess.run([sys.executable, "-c", stand_in, "--config", "configs/tiny.py", f"--workdir={tmp_path}"],
                       cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=120, check=False)
  assert run.returncode == status, run.stderr


# Words of the bundled WordSim-353 and SimLex-999 pairs, so the final evaluation has pairs to score.
GROUPS = [
    "love sex tiger cat book paper computer keyboard internet plane car train telephone communication "
    "television radio media drug abuse bread".split(),
    "old new smart intelligent hard difficult happy cheerful easy fast rapid glad short long stupid dumb "
    "weird strange wide narrow".split(),
]


@pytest.fixture
def tiny_config(monkeypatch):
  """configs/tiny.py's config (the repository root is not a package on sys.path by itself)."""
  monkeypatch.syspath_prepend(str(REPO))
  return importlib.import_module("configs.tiny").get_config()


@pytest.mark.slow
@pytest.mark.needs_gensim
@pytest.mark.parametrize("model,input_path", [("skipgram", "tfdata"), ("cbow", "numpy")])
def test_planted_groups_are_learned(tiny_config, tmp_path, model: str, input_path: str) -> None:
  """Two disjoint word groups (sentences never mix them): every word's 5 nearest neighbours are its own group."""
  from gensim.models import KeyedVectors

  from w2v_jax import trainer

  assert not set(GROUPS[0]) & set(GROUPS[1]) and all(len(g) == 20 for g in GROUPS)
  corpus = tmp_path / "planted.txt"
  corpus.write_text(synthetic_corpus(30_000, GROUPS, seed=1))
  config = tiny_config
  config.corpus = str(corpus)
  config.model = model
  config.input = input_path
  config.epochs = 2
  config.batch_size = 128
  config.block_length = 32
  config.eval_every_epoch = False
  config.probe_words = ""
  workdir = tmp_path / "run"
  summary = trainer.train_and_evaluate(config, str(workdir))
  assert summary["steps"] > 0

  vectors = KeyedVectors.load_word2vec_format(str(workdir / "vectors.txt"), binary=False)
  assert sorted(vectors.index_to_key) == sorted(GROUPS[0] + GROUPS[1])
  for group in GROUPS:
    for word in group:
      neighbours = [w for w, _ in vectors.most_similar(word, topn=5)]
      assert set(neighbours) <= set(group), (word, neighbours)


@pytest.mark.slow
@pytest.mark.needs_gensim
def test_planted_groups_are_learned_at_65536_tokens_per_update(tiny_config, tmp_path) -> None:
  """One synchronous update of 65,536 tokens over 40 words (~1,600 terms per row in it): with the damped rule
  each word's 5 nearest neighbours are its own group; plain summed SGD (damping 0) diverges at this size."""
  from gensim.models import KeyedVectors

  from w2v_jax import trainer
  from w2v_jax.errors import UserError

  corpus = tmp_path / "planted.txt"
  corpus.write_text(synthetic_corpus(4 * 65_536, GROUPS, seed=2))
  config = tiny_config
  config.corpus, config.epochs, config.sample = str(corpus), 2, 0.0
  config.batch_size, config.update_size, config.block_length = 65_536, 0, 256
  summary = trainer.train_and_evaluate(config, str(tmp_path / "run"))
  assert summary["steps"] >= 6
  vectors = KeyedVectors.load_word2vec_format(str(tmp_path / "run" / "vectors.txt"), binary=False)
  for group in GROUPS:
    for word in group:
      neighbours = [w for w, _ in vectors.most_similar(word, topn=5)]
      assert set(neighbours) <= set(group), (word, neighbours)

  config.damping = 0.0
  try:
    trainer.train_and_evaluate(config, str(tmp_path / "plain"))
  except UserError as e:
    assert re.search(r"the loss became (nan|-?inf)", str(e))
    return
  plain = KeyedVectors.load_word2vec_format(str(tmp_path / "plain" / "vectors.txt"), binary=False)
  mixed = [w for g in GROUPS for w in g if not {n for n, _ in plain.most_similar(w, topn=5)} <= set(g)]
  assert mixed, "plain summed SGD learned the groups too: the test no longer shows what damping does"


@pytest.mark.slow
@pytest.mark.needs_gensim
def test_train_py_end_to_end(tmp_path) -> None:
  """train.py on a small corpus: exit 0; vocab.tsv, vectors.txt/.bin (gensim-readable, vocab order), config, events."""
  from gensim.models import KeyedVectors

  corpus = tmp_path / "corpus.txt"
  corpus.write_text(synthetic_corpus(3000, [[f"w{i}" for i in range(30)], [f"v{i}" for i in range(30)]]))
  workdir = tmp_path / "run"
  run = subprocess.run(train_command(str(workdir), f"--config.corpus={corpus}"), cwd=REPO, env=subprocess_env(),
                       capture_output=True, text=True, timeout=600, check=False)
  assert run.returncode == 0, run.stderr[-3000:]
  assert "Traceback" not in run.stderr

  words = [line.split("\t")[0] for line in (workdir / "vocab.tsv").read_text().splitlines()]
  assert sorted(words) == sorted([f"w{i}" for i in range(30)] + [f"v{i}" for i in range(30)])
  text = KeyedVectors.load_word2vec_format(str(workdir / "vectors.txt"), binary=False)
  binary = KeyedVectors.load_word2vec_format(str(workdir / "vectors.bin"), binary=True)
  assert text.index_to_key == binary.index_to_key == words
  assert text.vector_size == binary.vector_size == 16
  np.testing.assert_allclose(text.vectors, binary.vectors, rtol=1e-6)
  assert np.isfinite(binary.vectors).all() and np.abs(binary.vectors).max() > 0

  config = json.loads((workdir / "config.json").read_text())
  assert config["corpus"] == str(corpus) and config["dim"] == 16
  events = list((workdir / "tensorboard").glob("events.out.tfevents*"))
  assert events and events[0].stat().st_size > 0


def test_update_size_becomes_whole_blocks_per_device(tiny_config) -> None:
  """update_size is rounded up to a block per device, capped at the batch, and refused if it cannot divide it."""
  from w2v_jax import settings
  from w2v_jax.errors import UserError

  config = tiny_config  # batch 256 tokens = 4 blocks of 64
  config.update_size = 64
  assert settings.update_blocks(config, 1) == 1
  assert settings.update_blocks(config, 2) == 2
  assert settings.update_blocks(config, 4) == 4
  config.update_size = 1024
  assert settings.update_blocks(config, 1) == 4
  config.batch_size, config.update_size = 384, 64  # 6 blocks: updates of 4 blocks on 4 devices cannot divide it
  with pytest.raises(UserError, match="update_size"):
    settings.update_blocks(config, 4)


def test_shape_blocks_are_whole_updates_of_at_most_curvature_every_tokens(tiny_config) -> None:
  """The shape group holds the most whole updates within curvature_every tokens (at least one) that divide the
  batch's updates; 0 means once per step."""
  from w2v_jax import settings

  config = tiny_config
  config.batch_size, config.block_length = 12 * 64, 64  # 12 blocks
  config.curvature_every = 0
  assert settings.shape_blocks(config, 1) == 12
  config.curvature_every = 5 * 64  # 5 one-block updates fit, but 5 does not divide 12: 4
  assert settings.shape_blocks(config, 1) == 4
  assert settings.shape_blocks(config, 2) == 4  # 2 updates of 2 blocks
  config.curvature_every = 64  # smaller than an update: a fresh shape per update
  assert settings.shape_blocks(config, 3) == 3
  config.curvature_every = 1 << 20  # more than the batch: once per step
  assert settings.shape_blocks(config, 2) == 12
