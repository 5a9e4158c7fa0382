"""w2v_jax.train: train from Python (a notebook) on a corpus path or a list of sentences, get KeyedVectors back."""

from __future__ import annotations

import copy
import filecmp
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Sequence

import ml_collections

from w2v_jax import config_names, logs, word2vec_format
from w2v_jax.errors import UserError, first_line
from w2v_jax.keyed_vectors import KeyedVectors
from w2v_jax.workdir import Workdir

Corpus = str | os.PathLike | Iterable[str | Sequence[str]] | None
EpochCallback = Callable[[int, KeyedVectors, dict[str, float]], bool | None]  # (epochs done, vectors, scores) -> stop?


def spill_sentences(sentences: Iterable[str | Sequence[str]], path: str) -> None:
  """Writes sentences (strings, or lists of tokens joined by spaces) one a line; an unchanged file is kept as it
  is, so that a second train() on the same sentences and workdir resumes without recounting."""
  staged = f"{path}.new"
  try:
    with open(staged, "w", encoding="utf-8") as f:
      for i, sentence in enumerate(sentences):
        if isinstance(sentence, str):
          f.write(sentence + "\n")
        elif isinstance(sentence, Sequence) and all(isinstance(token, str) for token in sentence):
          f.write(" ".join(sentence) + "\n")
        else:
          raise UserError(f"corpus: sentence {i} is {type(sentence).__name__}, not a string or a list of token "
                          "strings")
    if os.path.exists(path) and filecmp.cmp(staged, path, shallow=False):
      os.remove(staged)
    else:
      os.replace(staged, path)
  except OSError as e:
    raise UserError(f"cannot write the sentences to {e.filename or path}: {e.strerror}") from None
  finally:
    if os.path.exists(staged):
      os.remove(staged)


def make_config(config: ml_collections.ConfigDict | None, overrides: dict) -> ml_collections.ConfigDict:
  """A copy of config (None: configs/default.py's) with the overrides set; unknown names and wrong types are
  UserErrors naming the field."""
  if config is None:
    from configs import default  # installed with the package

    config = default.get_config()
  else:
    config = copy.deepcopy(config)
  for name, value in overrides.items():
    if name not in config:
      raise UserError(f"{name}: {config_names.unknown_field(name, config.keys())}")
    try:
      config[name] = value
    except (TypeError, ValueError) as e:
      raise UserError(f"{name}={value!r}: {first_line(e)}") from None
  return config


def train(corpus: Corpus, workdir: str | os.PathLike | None = None, config: ml_collections.ConfigDict | None = None,
          *, on_epoch_end: EpochCallback | None = None, quiet: bool = False, **overrides) -> KeyedVectors:
  """Trains word2vec and returns its vectors.

  corpus: a path, glob or any config.corpus value (None: the config's own), or an iterable of sentences (strings,
  or lists of tokens), written to the workdir first. workdir: where checkpoints, vocab and vectors go (None: a
  temporary directory, removed afterwards). config: a ConfigDict (None: configs/default.py); overrides set its
  fields by name, e.g. dim=50, epochs=3. A run on a workdir resumes it, as train.py does. Mistakes raise
  UserError; a first Ctrl-C checkpoints and raises UserError, a second one raises KeyboardInterrupt.

  on_epoch_end(epoch, vectors, scores) is called after each epoch but the last, with the epochs done (from 1),
  KeyedVectors of that epoch and its evaluation scores (empty with eval_every_epoch=False); returning True stops
  training there, and the vectors of that epoch are returned. quiet: log only warnings (the `w2v_jax` logger).
  """
  config = make_config(config, overrides)
  logs.setup(quiet)
  temporary = workdir is None
  workdir = tempfile.mkdtemp(prefix="w2v_jax-") if temporary else os.fspath(workdir)
  keep = not temporary
  try:
    if isinstance(corpus, str | os.PathLike):
      config.corpus = os.fspath(corpus)
    elif corpus is not None:
      os.makedirs(workdir, exist_ok=True)
      config.corpus = Workdir(workdir).sentences
      spill_sentences(corpus, config.corpus)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported
    from w2v_jax import trainer

    hook = None if on_epoch_end is None else (
        lambda epoch, words, vectors, scores: on_epoch_end(epoch, KeyedVectors(words, vectors), scores))
    summary = trainer.train_and_evaluate(config, workdir, exit_on_second_signal=False, on_epoch_end=hook)
    if "stopped_at_step" in summary:
      keep = True
      raise UserError(f"training was stopped at step {summary['stopped_at_step']}; its checkpoint is in "
                      f"{workdir}/checkpoints: train again with workdir={workdir!r} to resume")
    return KeyedVectors(*word2vec_format.read_word2vec(Workdir(workdir).vectors_bin))
  finally:
    if not keep:
      shutil.rmtree(workdir, ignore_errors=True)
