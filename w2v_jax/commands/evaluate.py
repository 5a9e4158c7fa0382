"""Evaluates word2vec vectors on word similarity and analogies, and answers queries (eval.py, w2v-jax eval/nn/analogy).

  w2v-jax eval --vectors vectors.bin          # any word2vec text/binary file (also fastText .vec)
  w2v-jax eval --workdir runs/x               # the vectors a training run wrote
  w2v-jax eval --workdir runs/x --similarity my_pairs.txt --analogy my_questions.txt
  w2v-jax eval --workdir runs/x --no_bundled --neighbors king,paris --query "man:king::woman:?"
  w2v-jax eval --vectors vectors.txt --output results.json --export_tsv projector/
  w2v-jax nn --workdir runs/x king paris            # nearest neighbours only (fastText's `nn`)
  w2v-jax analogy --workdir runs/x man king woman   # man is to king as woman is to ?

The bundled benchmarks (WordSim-353 with its similarity/relatedness splits, SimLex-999 and the
Google analogy set) run unless --no_bundled; --similarity/--analogy files are added to them.
"""

import json
import math
import re

from absl import app, flags, logging

from w2v_jax import evaluation, export, word2vec_format
from w2v_jax.atomic_file import atomic_write
from w2v_jax.commands import list_flags_in_help
from w2v_jax.errors import UserError, exit_on_user_error, first_line
from w2v_jax.keyed_vectors import check_finite, load_workdir

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


@exit_on_user_error
def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing with a bad flag or value as one error line and status 2 (absl's own exits 1)."""
  try:
    return FLAGS(argv)
  except flags.Error as e:
    raise UserError(f"{first_line(e)}; see --helpfull") from None


def evaluate(neighbors: list[str], query: str | None, bundled: bool) -> None:
  """Loads the vectors the flags name, answers the queries and scores the benchmarks."""
  if not FLAGS["verbosity"].present:
    logging.set_verbosity(logging.ERROR)  # absl's INFO default shows jax's backend probing, Orbax's options
  if (FLAGS.vectors is None) == (FLAGS.workdir is None):
    raise UserError("give exactly one of --vectors FILE or --workdir DIR")
  if FLAGS.restrict_vocab < 0:
    raise UserError(f"--restrict_vocab must be >= 0 (0 = all words), got {FLAGS.restrict_vocab}")
  analogy = parse_query(query) if query is not None else None
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
  answers = [f"{word}: {_listing(evaluation.nearest_neighbors(emb, word))}" for word in neighbors]
  if analogy:
    answers.append(f"{query.strip()} {_listing(evaluation.analogy_query(emb, *analogy))}")

  files = evaluation.bundled_benchmarks() if bundled else {}
  results = evaluation.evaluate_all(
      emb,
      similarity_files=[*files.get("similarity", []), *FLAGS.similarity],
      analogy_files=[*files.get("analogy", []), *FLAGS.analogy],
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


def _flag_neighbors() -> list[str]:
  """The words of --neighbors (comma-separated)."""
  return [word for word in map(str.strip, (FLAGS.neighbors or "").split(",")) if word]


@exit_on_user_error
def main(argv: list[str]) -> None:
  """eval: the benchmarks (unless --no_bundled) and the --neighbors/--query queries."""
  if len(argv) > 1:
    raise UserError(f"unexpected arguments {' '.join(argv[1:])!r}; see --help")
  evaluate(_flag_neighbors(), FLAGS.query, not FLAGS.no_bundled)


@exit_on_user_error
def nn_main(argv: list[str]) -> None:
  """nn WORD...: the nearest neighbours of each word; benchmarks only from --similarity/--analogy files."""
  if len(argv) < 2:
    raise UserError("nn: give one or more words, e.g. w2v-jax nn --workdir runs/x king paris")
  evaluate([*_flag_neighbors(), *argv[1:]], FLAGS.query, bundled=False)


@exit_on_user_error
def analogy_main(argv: list[str]) -> None:
  """analogy A B C: the words that answer 'A is to B as C is to ?' (3CosAdd), as --query=A:B::C:? does."""
  if len(argv) != 4:
    raise UserError("analogy: give three words A B C (A is to B as C is to ?), e.g. w2v-jax analogy "
                    f"--workdir runs/x man king woman; got {len(argv) - 1}")
  evaluate(_flag_neighbors(), f"{argv[1]}:{argv[2]}::{argv[3]}:?", bundled=False)


MAINS = {"eval": main, "nn": nn_main, "analogy": analogy_main}


def run(argv: list[str] | None = None, command: str = "eval") -> None:
  """Runs the eval, nn or analogy command on argv (None: sys.argv) and exits with its status."""
  list_flags_in_help(__name__)
  app.run(MAINS[command], argv=argv, flags_parser=parse_flags)
