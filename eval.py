"""Evaluates word2vec vectors on word similarity and analogies, and answers queries.

  python eval.py --vectors vectors.bin          # any word2vec text/binary file (also fastText .vec)
  python eval.py --workdir runs/x               # the vectors a training run wrote
  python eval.py --workdir runs/x --similarity my_pairs.txt --analogy my_questions.txt
  python eval.py --workdir runs/x --no_bundled --neighbors king,paris --query "man:king::woman:?"
  python eval.py --vectors vectors.txt --output results.json --export_tsv projector/

The bundled benchmarks (WordSim-353 with its similarity/relatedness splits, SimLex-999 and the
Google analogy set) run unless --no_bundled; --similarity/--analogy files are added to them.
"""

import json
import math
import os
import re

import numpy as np
from absl import app, flags, logging

from w2v_jax import checkpointing, evaluation, export, word2vec_format
from w2v_jax.atomic_file import atomic_write
from w2v_jax.errors import UserError, exit_on_user_error
from w2v_jax.vocab import Vocab

FLAGS = flags.FLAGS
flags.DEFINE_string("vectors", None, "A word2vec text or binary vectors file to evaluate.")
flags.DEFINE_string("workdir", None, "A training workdir: evaluates the vectors it wrote.")
flags.DEFINE_multi_string("similarity", [], "Extra word-similarity file of 'w1 w2 score' lines.")
flags.DEFINE_multi_string("analogy", [], "Extra analogy file of 'a b c d' and ': section' lines.")
flags.DEFINE_bool("no_bundled", False, "Skip the bundled benchmarks; only run the files given.")
flags.DEFINE_integer("restrict_vocab", 30000, "Analogy answers come from this many most frequent "
                     "words; questions with other words are skipped (0 = all words).")
flags.DEFINE_bool("case_sensitive", False, "Match benchmark words case-sensitively (default: "
                  "case-insensitively, most frequent case variant, as gensim).")
flags.DEFINE_string("output", None, "Also write the results as JSON to this file.")
flags.DEFINE_string("neighbors", None, "Comma-separated words to print the nearest neighbors of.")
flags.DEFINE_string("query", None, "An analogy to answer, written 'a:b::c:?', e.g. 'man:king::woman:?'.")
flags.DEFINE_bool("wplusc", False, "With --workdir: use input + output vectors ('w+c', Levy et al. 2015), "
                  "read from the run's latest checkpoint, for evaluation and export.")
flags.DEFINE_string("export_tsv", None, "Write vectors.tsv and metadata.tsv for the TensorBoard "
                    "Embedding Projector into this directory.")


def parse_query(query: str) -> tuple[str, str, str]:
  """'a:b::c:?' -> (a, b, c)."""
  match = re.fullmatch(r"\s*([^:\s]+)\s*:\s*([^:\s]+)\s*::\s*([^:\s]+)\s*:\s*\?\s*", query)
  if not match:
    raise UserError(f"--query {query!r}: write it as 'a:b::c:?', e.g. 'man:king::woman:?'")
  return match[1], match[2], match[3]


def _listing(pairs: list[tuple[str, float]]) -> str:
  return ", ".join(f"{word} {score:.3f}" for word, score in pairs)


def _null_nan(value):
  """The results with NaN (an undefined correlation) as None, since JSON has no NaN."""
  if isinstance(value, dict):
    return {k: _null_nan(v) for k, v in value.items()}
  return None if isinstance(value, float) and math.isnan(value) else value


def run_dim(config_path: str) -> int:
  """The vector dimension a run's config.json records; one error line when the file is not such a config."""
  try:
    with open(config_path, encoding="utf-8") as f:
      dim = json.load(f)["dim"]
  except (OSError, ValueError, KeyError, TypeError) as e:  # ValueError: not JSON, or not UTF-8
    raise UserError(f"{config_path}: cannot read the run's dim ({type(e).__name__}: {e}); train.py rewrites it "
                    "when run again with the run's settings, or evaluate a vectors file with --vectors") from None
  if not isinstance(dim, int) or dim < 1:
    raise UserError(f"{config_path}: dim is {dim!r}, not a positive integer; train.py rewrites it when run again")
  return dim


def check_finite(path: str, words: list[str], vectors: np.ndarray) -> None:
  """Refuses vectors with NaN or inf values: their cosines are undefined, so queries and scores would be wrong."""
  bad = ~np.isfinite(vectors).all(axis=1)
  if bad.any():
    raise UserError(f"{path}: {int(bad.sum())} of {len(words)} vectors hold NaN or inf values (the first: "
                    f"{words[int(np.argmax(bad))]!r}); the run diverged or the file is damaged: retrain "
                    "(e.g. lower --config.alpha) or use other vectors")


def load_workdir(workdir: str, wplusc: bool = False) -> tuple[str, list[str], np.ndarray]:
  """A training run's vectors: its latest good checkpoint if any, else its exported vectors.bin."""
  config_path = os.path.join(workdir, "config.json")
  if checkpointing.has_checkpoints(workdir) and os.path.exists(config_path):
    vocab = Vocab.load(workdir)
    dim = run_dim(config_path)
    latest = checkpointing.latest_tables(workdir, vocab.size, dim)
    if latest is not None:
      vectors = latest.input + latest.output if wplusc else latest.input
      which = "latest" if not latest.damaged else f"newer {', '.join(map(str, latest.damaged))} damaged"
      return f"{workdir}/checkpoints/{latest.step} ({which}{', w+c' if wplusc else ''})", vocab.words, vectors
  if wplusc:
    raise UserError(f"workdir {workdir}: --wplusc needs a checkpoint (it holds the output vectors); none found")
  path = evaluation.vectors_for_workdir(workdir)
  return str(path), *word2vec_format.read_word2vec(path)


@exit_on_user_error
def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing with a bad flag or value as one error line and status 2 (absl's own exits 1)."""
  try:
    return FLAGS(argv)
  except flags.Error as e:
    raise UserError(f"{str(e).splitlines()[0]}; see --helpfull") from None


@exit_on_user_error
def main(argv: list[str]) -> None:
  if not FLAGS["verbosity"].present:
    logging.set_verbosity(logging.ERROR)  # absl's INFO default shows jax's backend probing, Orbax's options
  if len(argv) > 1:
    raise UserError(f"unexpected arguments {' '.join(argv[1:])!r}; see --help")
  if (FLAGS.vectors is None) == (FLAGS.workdir is None):
    raise UserError("give exactly one of --vectors FILE or --workdir DIR")
  if FLAGS.restrict_vocab < 0:
    raise UserError(f"--restrict_vocab must be >= 0 (0 = all words), got {FLAGS.restrict_vocab}")
  query = parse_query(FLAGS.query) if FLAGS.query is not None else None
  if FLAGS.wplusc and not FLAGS.workdir:
    raise UserError("--wplusc needs --workdir (a vectors file holds only the input vectors)")
  if FLAGS.vectors:
    path = FLAGS.vectors
    words, vectors = word2vec_format.read_word2vec(path)
  else:
    path, words, vectors = load_workdir(FLAGS.workdir, FLAGS.wplusc)
  check_finite(path, words, vectors)
  emb = evaluation.Embeddings(words, vectors)
  print(f"{path}: {len(words)} words, dimension {vectors.shape[1]}")

  # Queries first, so an unknown word is reported before the benchmarks run.
  answers = [
      f"{word}: {_listing(evaluation.nearest_neighbors(emb, word))}"
      for word in map(str.strip, (FLAGS.neighbors or "").split(",")) if word
  ]
  if query:
    answers.append(f"{FLAGS.query.strip()} {_listing(evaluation.analogy_query(emb, *query))}")

  bundled = {} if FLAGS.no_bundled else evaluation.bundled_benchmarks()
  results = evaluation.evaluate_all(
      emb,
      similarity_files=[*bundled.get("similarity", []), *FLAGS.similarity],
      analogy_files=[*bundled.get("analogy", []), *FLAGS.analogy],
      restrict_vocab=FLAGS.restrict_vocab,
      case_insensitive=not FLAGS.case_sensitive,
  )
  if results["similarity"] or results["analogy"]:
    print(evaluation.format_results(results, sections=True))
  for line in answers:
    print(line)

  try:
    if FLAGS.output:
      report = {"vectors": {"path": str(path), "words": len(words), "dim": vectors.shape[1]}}
      with atomic_write(FLAGS.output, "w", encoding="utf-8") as f:
        json.dump(_null_nan({**report, **results}), f, indent=2)
        f.write("\n")
    if FLAGS.export_tsv:
      export.write_projector_tsv(FLAGS.export_tsv, words, vectors)
      print(f"projector files in {FLAGS.export_tsv}: vectors.tsv, metadata.tsv")
  except OSError as e:
    raise UserError(f"cannot write {e.filename}: {e.strerror}") from None


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)
