"""Intrinsic evaluation of word vectors: word-similarity correlation and analogy accuracy.

The numbers agree with gensim's `KeyedVectors.evaluate_word_pairs` and `evaluate_word_analogies`
(same case folding, vocabulary restriction and skipping of unknown words), but the analogy search
runs batched under `jax.jit`: the full Google set over 30,000 candidates takes about 2 CPU-seconds
where gensim takes over 100 (bench/eval_speed.py).
"""

from __future__ import annotations

import functools
import operator
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from w2v_jax.errors import UserError
from w2v_jax.logs import LOGGER
from w2v_jax.workdir import Workdir

_BENCHMARK_DIR = Path(__file__).parent / "data" / "benchmarks"
# Questions answered per jitted call; the last batch is padded so every call has the same shapes.
# On CPU, batches of 512 or more ran ~3x slower per question (XLA reduces them differently).
_BATCH = 128
# Candidates per chunk in the two-pass argmax of _answer_batch.
_CHUNK = 128
# gensim's `most_similar_cosmul` adds this to the denominator of 3CosMul.
_COSMUL_EPS = 1e-6
# gensim's evaluate_word_analogies looks at the top 5 answers when skipping case variants of a/b/c.
_GENSIM_TOPN = 5

PathLike = str | os.PathLike


class Embeddings:
  """Word vectors in vocabulary order (most frequent first), with lookups and unit-length rows."""

  def __init__(self, words: Sequence[str], vectors: np.ndarray | jax.Array):
    self.words = list(words)
    self.vectors = np.asarray(vectors, dtype=np.float32)
    if self.vectors.ndim != 2 or self.vectors.shape[0] != len(self.words):
      raise ValueError(f"need one row per word: {len(self.words)} words, {self.vectors.shape}")
    self.index = {w: i for i, w in enumerate(self.words)}
    if len(self.index) != len(self.words):
      raise ValueError("words must be distinct")

  @functools.cached_property
  def folded_index(self) -> dict[str, int]:
    """Upper-cased word -> index of its first (most frequent) case variant, as gensim folds case."""
    folded: dict[str, int] = {}
    for i, word in enumerate(self.words):
      folded.setdefault(word.upper(), i)
    return folded

  @functools.cached_property
  def unit(self) -> jax.Array:
    """Rows scaled to unit length (all-zero rows stay zero)."""
    return _normalize(jnp.asarray(self.vectors))

  def lookup(self, word: str, case_insensitive: bool) -> int | None:
    """Index of `word`, or of its first case variant when case_insensitive; None if unknown."""
    if case_insensitive:
      return self.folded_index.get(word.upper())
    return self.index.get(word)


@jax.jit
def _normalize(x: jax.Array) -> jax.Array:
  norms = jnp.linalg.norm(x, axis=-1, keepdims=True)
  return x / jnp.where(norms > 0, norms, 1.0)


def _read_lines(path: PathLike, kind: str) -> list[str]:
  try:
    return Path(path).read_text(encoding="utf-8").split("\n")
  except FileNotFoundError:
    raise UserError(f"{path}: {kind} file not found") from None
  except (OSError, UnicodeDecodeError) as e:
    raise UserError(f"{path}: cannot read {kind} file as UTF-8 text ({e})") from None


def load_similarity(path: PathLike) -> list[tuple[str, str, float]]:
  """Reads `word1 word2 score` lines (tab or space separated).

  Blank lines and `#` comments are skipped, and so is one non-numeric header line before the
  first pair; any other malformed line is an error rather than silently dropped.
  """
  pairs: list[tuple[str, str, float]] = []
  header_seen = False
  for line_no, raw_line in enumerate(_read_lines(path, "similarity"), start=1):
    line = raw_line.strip()
    if not line or line.startswith("#"):
      continue
    fields = line.split()
    try:
      if len(fields) != 3:
        raise ValueError
      pairs.append((fields[0], fields[1], float(fields[2])))
    except ValueError:
      if pairs or header_seen:
        raise UserError(
            f"{path}: line {line_no}: expected 'word1 word2 score', got {line[:60]!r}"
        ) from None
      header_seen = True
  if not pairs:
    raise UserError(f"{path}: no 'word1 word2 score' lines; is this a word-similarity file?")
  return pairs


def _parse_analogies(path: PathLike) -> tuple[list[tuple[str, str, str, str, str]], bool]:
  """Returns the questions and whether the file had `: section` lines."""
  questions: list[tuple[str, str, str, str, str]] = []
  section = None
  first_unsectioned = None
  for line_no, raw_line in enumerate(_read_lines(path, "analogy"), start=1):
    line = raw_line.strip()
    if not line:
      continue
    if line.startswith(":"):
      if first_unsectioned is not None:
        raise UserError(
            f"{path}: line {first_unsectioned}: question before the first ': section' line"
        )
      section = line.lstrip(": ")
      continue
    fields = line.split()
    if len(fields) != 4:
      raise UserError(
          f"{path}: line {line_no}: expected a question 'a b c d' or a ': section' line, "
          f"got {line[:60]!r}"
      )
    if section is None and first_unsectioned is None:
      first_unsectioned = line_no
    questions.append((section, *fields))
  if not questions:
    raise UserError(f"{path}: no 'a b c d' question lines; is this an analogy file?")
  if section is None:
    stem = Path(path).stem
    questions = [(stem, *q[1:]) for q in questions]
  return questions, section is not None


def load_analogies(path: PathLike) -> list[tuple[str, str, str, str, str]]:
  """Reads `a b c d` questions grouped by `: section` lines, as (section, a, b, c, d).

  A file without section lines is one section named after the file's stem.
  """
  return _parse_analogies(path)[0]


@jax.jit
def _pair_cosines(unit: jax.Array, a: jax.Array, b: jax.Array) -> jax.Array:
  return jnp.sum(unit[a] * unit[b], axis=-1)


def _padded_length(n: int) -> int:
  """Rounds n up to a power of two so that similar-sized inputs share one compiled function."""
  return max(8, 1 << (n - 1).bit_length())


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
  x, y = x - x.mean(), y - y.mean()
  return float(x @ y / np.sqrt((x @ x) * (y @ y)))


def _average_ranks(x: np.ndarray) -> np.ndarray:
  """Ranks 1..n with ties given their mean rank (scipy.stats.rankdata), for Spearman's rho."""
  order = np.argsort(x, kind="stable")
  starts = np.flatnonzero(np.r_[True, x[order][1:] != x[order][:-1]])
  sizes = np.diff(np.r_[starts, len(x)])
  ranks = np.empty(len(x))
  ranks[order] = np.repeat(starts + (sizes + 1) / 2, sizes)
  return ranks


def evaluate_similarity(emb: Embeddings, path: PathLike, case_insensitive: bool = True) -> dict:
  """Spearman and Pearson correlation of cosine similarity with the file's human scores.

  Pairs with an unknown word are skipped and counted in `oov_pairs`, as gensim does. The
  correlations are NaN (as in scipy) when fewer than two pairs are known or a side is constant.
  """
  pairs = load_similarity(path)
  ids, gold = [], []
  for a, b, score in pairs:
    ia, ib = emb.lookup(a, case_insensitive), emb.lookup(b, case_insensitive)
    if ia is not None and ib is not None:
      ids.append((ia, ib))
      gold.append(score)
  spearman = pearson = float("nan")
  if len(gold) >= 2:
    pad = np.zeros((_padded_length(len(ids)), 2), np.int32)
    pad[: len(ids)] = ids
    cos = np.asarray(_pair_cosines(emb.unit, pad[:, 0], pad[:, 1]))[: len(ids)].astype(np.float64)
    if np.ptp(cos) > 0 and np.ptp(gold) > 0:
      gold = np.array(gold)
      spearman = _pearson(_average_ranks(gold), _average_ranks(cos))
      pearson = _pearson(gold, cos)
  return {
      "spearman": spearman,
      "pearson": pearson,
      "pairs": len(gold),
      "oov_pairs": len(pairs) - len(gold),
  }


@functools.partial(jax.jit, static_argnames="num_candidates")
def _cosine_table(unit: jax.Array, rows: jax.Array, num_candidates: int) -> jax.Array:
  """Cosines of the question words with the candidate answers, [len(rows), whole chunks]."""
  table = unit[rows] @ unit[:num_candidates].T
  return jnp.pad(table, ((0, 0), (0, -num_candidates % _CHUNK)))


def _add_objective(cos_a: jax.Array, cos_b: jax.Array, cos_c: jax.Array) -> jax.Array:
  """3CosAdd; ranks like gensim's cosine with the normalised mean of b, c and -a."""
  return cos_b + cos_c - cos_a


def _mul_objective(cos_a: jax.Array, cos_b: jax.Array, cos_c: jax.Array) -> jax.Array:
  """3CosMul (Levy & Goldberg 2014), cosines shifted to [0, 1] as in gensim most_similar_cosmul."""
  return (1 + cos_b) / 2 * ((1 + cos_c) / 2) / ((1 + cos_a) / 2 + _COSMUL_EPS)


_OBJECTIVES = {"add": _add_objective, "mul": _mul_objective}


@functools.partial(jax.jit, static_argnames="objective")
def _answer_batch(
    table: jax.Array, batch: jax.Array, canonical: jax.Array, objective: str
) -> jax.Array:
  """Whether each question of a batch is answered correctly, choosing the answer as gensim does.

  batch [B, 7 + K] columns: table rows of a, b, c; candidate index of d; candidate indices of
  a, b, c; K candidate indices of other case variants of a, b, c (-1 = none). canonical [R]:
  candidate -> index of its first case variant, which is how d is identified.
  a, b, c are never answers. Their case variants are skipped too, but gensim only looks for a
  non-variant among its top 5 answers and otherwise answers with the 5th.
  """
  rows, expected, excluded, variants = batch[:, :3], batch[:, 3], batch[:, 4:], batch[:, 7:]
  num_questions, num_padded = rows.shape[0], table.shape[1]

  def raw_scores(candidates: jax.Array | None) -> jax.Array:
    """Scores [B, C] of the candidates [B, C] of each question, or [B, R] of all when None."""
    if candidates is None:
      return _OBJECTIVES[objective](*[table[rows[:, k]] for k in range(3)])
    return _OBJECTIVES[objective](*[table[rows[:, k : k + 1], candidates] for k in range(3)])

  def scores(candidates: jax.Array | None) -> jax.Array:
    """raw_scores, -inf for a, b, c, their case variants and the table's padding."""
    index = jnp.arange(num_padded) if candidates is None else candidates
    skipped = functools.reduce(
        operator.or_,
        [index == excluded[:, k : k + 1] for k in range(excluded.shape[1])],
        index >= canonical.shape[0],
    )
    return jnp.where(skipped, -jnp.inf, raw_scores(candidates))

  # jnp.argmax over all candidates is slow on CPU (XLA does not vectorise it), so take the
  # maximum of each chunk in one fused pass, then the argmax within the first best chunk: the
  # same first-maximum answer.
  chunk_best = jnp.max(scores(None).reshape(num_questions, -1, _CHUNK), axis=2)
  best = jnp.max(chunk_best, axis=1)
  in_chunk = jnp.argmax(chunk_best, axis=1)[:, None] * _CHUNK + jnp.arange(_CHUNK)
  pick = jnp.take_along_axis(in_chunk, jnp.argmax(scores(in_chunk), axis=1)[:, None], axis=1)[:, 0]
  found = best > -jnp.inf  # False only if every candidate is skipped
  if variants.shape[1] >= _GENSIM_TOPN:
    variant_scores = jnp.where(variants >= 0, raw_scores(jnp.maximum(variants, 0)), -jnp.inf)
    ahead = jnp.sum(variant_scores > best[:, None], axis=1)
    nth = jnp.argsort(-variant_scores, axis=1)[:, _GENSIM_TOPN - 1 : _GENSIM_TOPN]
    pick = jnp.where(ahead >= _GENSIM_TOPN, jnp.take_along_axis(variants, nth, axis=1)[:, 0], pick)
    found |= ahead >= _GENSIM_TOPN
  return found & (canonical[pick] == expected)


def _variant_lists(emb: Embeddings, num_candidates: int) -> tuple[np.ndarray, dict[int, list[int]]]:
  """canonical[j] for each candidate, and first index -> its other case variants among them."""
  canonical = np.array(
      [emb.folded_index[w.upper()] for w in emb.words[:num_candidates]], dtype=np.int32
  )
  others: dict[int, list[int]] = {}
  for j in np.flatnonzero(canonical != np.arange(num_candidates)):
    others.setdefault(int(canonical[j]), []).append(int(j))
  return canonical, others


def _count_correct(
    emb: Embeddings, ids: np.ndarray, num_candidates: int, case_insensitive: bool
) -> tuple[np.ndarray, np.ndarray]:
  """Per-question correctness [N] of 3CosAdd and 3CosMul; ids [N, 4] are the a, b, c, d indices."""
  if case_insensitive:
    canonical, others = _variant_lists(emb, num_candidates)
  else:
    canonical, others = np.arange(num_candidates, dtype=np.int32), {}
  variant_rows = [[]] * len(ids)
  if others:
    variant_rows = [sorted({j for i in set(q[:3]) for j in others.get(i, [])}) for q in ids.tolist()]
  words, rows = np.unique(ids[:, :3], return_inverse=True)
  table_rows = np.zeros(_padded_length(len(words)), np.int32)
  table_rows[: len(words)] = words
  table = _cosine_table(emb.unit, table_rows, num_candidates)
  # Padding to whole batches keeps the shapes, hence the compiled function, the same every call.
  batches = np.full((-(-len(ids) // _BATCH) * _BATCH, 7 + max(map(len, variant_rows))), -1, np.int32)
  batches[:, :3] = 0
  batches[: len(ids), :7] = np.concatenate([rows.reshape(-1, 3), ids[:, 3:], ids[:, :3]], axis=1)
  for row, found in zip(batches, variant_rows, strict=False):
    row[7 : 7 + len(found)] = found
  canonical = jnp.asarray(canonical)
  add, mul = (
      np.concatenate([
          np.asarray(_answer_batch(table, batches[s : s + _BATCH], canonical, objective))
          for s in range(0, len(batches), _BATCH)
      ])[: len(ids)]
      for objective in ("add", "mul")
  )
  return add, mul


def evaluate_analogy(
    emb: Embeddings, path: PathLike, restrict_vocab: int = 30000, case_insensitive: bool = True
) -> dict:
  """Analogy accuracy ("a is to b as c is to d"), answers searched among the first words.

  `accuracy` (3CosAdd) equals gensim's `evaluate_word_analogies(path, restrict_vocab,
  case_insensitive)` score: questions with a word outside the first `restrict_vocab` words
  (0 = all words) are skipped and counted in `oov_questions`, and a section with no answered
  question scores 0.0. `cosmul_accuracy` uses 3CosMul with the same candidates. `semantic` and
  `syntactic` split the sections by whether their name starts with "gram" (None when the file has
  no section of that kind).
  """
  if restrict_vocab < 0:
    raise UserError(f"restrict_vocab must be >= 0 (0 = all words), got {restrict_vocab}")
  questions, has_sections = _parse_analogies(path)
  num_candidates = min(restrict_vocab or len(emb.words), len(emb.words))
  names = list(dict.fromkeys(q[0] for q in questions))
  section_index = {n: i for i, n in enumerate(names)}
  ids, section_ids = [], []
  known = {w: emb.lookup(w, case_insensitive) for w in {w for q in questions for w in q[1:]}}
  for section, *words in questions:
    idx = [known[w] for w in words]
    if all(i is not None and i < num_candidates for i in idx):
      ids.append(idx)
      section_ids.append(section_index[section])
  ids = np.array(ids, dtype=np.int64).reshape(-1, 4)
  section_ids = np.array(section_ids, dtype=np.int64)
  if len(ids):
    add, mul = _count_correct(emb, ids, num_candidates, case_insensitive)
  else:
    add = mul = np.zeros(0, bool)

  def accuracy(correct, in_group):
    return float(correct[in_group].mean()) if in_group.any() else 0.0

  groups = {}
  for group, is_syntactic in (("semantic", False), ("syntactic", True)):
    members = [i for i, n in enumerate(names) if n.startswith("gram") == is_syntactic]
    in_group = np.isin(section_ids, members)
    groups[group] = accuracy(add, in_group) if has_sections and members else None
  everything = np.ones(len(ids), bool)
  return {
      "accuracy": accuracy(add, everything),
      "cosmul_accuracy": accuracy(mul, everything),
      "questions": len(ids),
      "oov_questions": len(questions) - len(ids),
      **groups,
      "sections": {n: accuracy(add, section_ids == i) for i, n in enumerate(names)},
  }


@jax.jit
def _cosines_with(unit: jax.Array, query: jax.Array) -> jax.Array:
  """Cosine of every word with `query` (any length; zero stays zero)."""
  return unit @ _normalize(query)


def _require(emb: Embeddings, word: str) -> int:
  """Index of `word`, falling back to its most frequent case variant; UserError if unknown."""
  index = emb.index.get(word)
  if index is None:
    index = emb.lookup(word, case_insensitive=True)
  if index is None:
    raise UserError(f"word {word!r} is not in the vocabulary ({len(emb.words)} words)")
  return index


def _top(
    emb: Embeddings, query: jax.Array, exclude: set[int], topn: int
) -> list[tuple[str, float]]:
  """The `topn` words most cosine-similar to `query`, leaving out the indices in `exclude`."""
  return top_scores(emb, _cosines_with(emb.unit, query), exclude, topn)


def top_scores(emb: Embeddings, scores: jax.Array, exclude: Iterable[int], topn: int) -> list[tuple[str, float]]:
  """The `topn` best-scoring words and their scores, leaving out the indices in `exclude`."""
  exclude = sorted(set(exclude))
  values, rows = top_k_without(scores, np.asarray(exclude, np.int32), top_count(emb, topn, exclude))
  return listing(emb, rows, values)


def top_count(emb: Embeddings, topn: int, exclude: Iterable[int]) -> int:
  """How many words a topn query can return once `exclude` is left out."""
  return max(0, min(topn, len(emb.words) - len(set(exclude))))


def listing(emb: Embeddings, rows: jax.Array, values: jax.Array) -> list[tuple[str, float]]:
  """(word, score) pairs of a top-k result."""
  return [(emb.words[i], float(v)) for i, v in zip(np.asarray(rows).tolist(), np.asarray(values).tolist())]


@functools.partial(jax.jit, static_argnames="k")
def top_k_without(scores: jax.Array, exclude: jax.Array, k: int) -> tuple[jax.Array, jax.Array]:
  """The k best scores and their rows, `exclude` left out, on the device (ties: the lower row first, as a stable
  sort); only k values travel to the host."""
  return jax.lax.top_k(scores.at[exclude].set(-jnp.inf), k)


def nearest_neighbors(emb: Embeddings, word: str, topn: int = 10) -> list[tuple[str, float]]:
  """The `topn` words with the highest cosine similarity to `word` (itself excluded)."""
  index = _require(emb, word)
  return _top(emb, emb.unit[index], {index}, topn)


def analogy_query(
    emb: Embeddings, a: str, b: str, c: str, topn: int = 5
) -> list[tuple[str, float]]:
  """Answers "a is to b as c is to ?" by 3CosAdd: words nearest to b - a + c, excluding a, b, c.

  E.g. ("man", "king", "woman") -> queen. Scores are cosines with the normalised b - a + c.
  """
  ia, ib, ic = (_require(emb, w) for w in (a, b, c))
  unit = emb.unit
  return _top(emb, unit[ib] - unit[ia] + unit[ic], {ia, ib, ic}, topn)


def bundled_benchmarks() -> dict[str, list[Path]]:
  """Paths of the benchmark files shipped in w2v_jax/data/benchmarks (see SOURCES.md there)."""
  return {
      "similarity": [
          _BENCHMARK_DIR / name
          for name in (
              "wordsim353.tsv",
              "wordsim353_similarity.txt",
              "wordsim353_relatedness.txt",
              "simlex999.txt",
          )
      ],
      "analogy": [_BENCHMARK_DIR / "questions-words.txt"],
  }


def evaluate_all(
    emb: Embeddings,
    similarity_files: Sequence[PathLike] | None = None,
    analogy_files: Sequence[PathLike] | None = None,
    restrict_vocab: int = 30000,
    case_insensitive: bool = True,
) -> dict:
  """Evaluates on similarity and analogy files (None: the bundled ones), keyed by file stem.

  Returns {"similarity": {name: evaluate_similarity(..)}, "analogy": {name: evaluate_analogy(..)}}.
  """
  bundled = bundled_benchmarks()
  results: dict[str, dict] = {"similarity": {}, "analogy": {}}
  for kind, files in (("similarity", similarity_files), ("analogy", analogy_files)):
    seen: dict[str, Path] = {}  # result name -> its file
    for path in bundled[kind] if files is None else files:
      name = Path(path).stem
      if name in seen:  # e.g. the user's copy of the Google analogies beside the bundled questions-words.txt
        if Path(path).read_bytes() == seen[name].read_bytes():
          continue  # the same benchmark twice: scored once
        name = f"{name} ({path})"
      seen[name] = Path(path)
      if kind == "similarity":
        results[kind][name] = evaluate_similarity(emb, path, case_insensitive)
      else:
        results[kind][name] = evaluate_analogy(emb, path, restrict_vocab, case_insensitive)
  return results


def headline_scores(results: dict) -> dict[str, float]:
  """The few numbers shown per epoch: WordSim-353 and SimLex-999 Spearman, Google analogy accuracy."""
  sim, ana = results["similarity"], results["analogy"]
  scores = {f"{name}_spearman": sim[name]["spearman"] for name in ("wordsim353", "simlex999") if name in sim}
  if "questions-words" in ana:
    scores["analogy_accuracy"] = ana["questions-words"]["accuracy"]
  return scores


def log_neighbors(emb: Embeddings, probe_words: str) -> None:
  """Logs the nearest neighbours of those comma-separated probe words that are in the vocabulary."""
  for word in [w for w in probe_words.split(",") if w]:
    if emb.lookup(word, case_insensitive=True) is not None:
      LOGGER.info(f"  {word}: " + ", ".join(f"{w} ({s:.2f})" for w, s in nearest_neighbors(emb, word, topn=8)))


def _fixed(value: float) -> str:
  return "n/a" if np.isnan(value) else f"{value:.4f}"


def _percent(value: float | None) -> str:
  return "n/a" if value is None else f"{100 * value:.2f}%"


def format_results(results: dict, sections: bool = False) -> str:
  """A plain-text table of `evaluate_all` results; `sections` adds per-section analogy accuracy."""
  names = [*results.get("similarity", {}), *results.get("analogy", {})]
  if sections:
    names += [f"  {s}" for r in results.get("analogy", {}).values() for s in r["sections"]]
  width = max([len(n) + 2 for n in names] + [12])
  lines = []
  if results.get("similarity"):
    lines.append(f"{'similarity':<{width}}{'spearman':>10}{'pearson':>10}{'pairs':>8}{'oov':>8}")
    for name, r in results["similarity"].items():
      lines.append(
          f"  {name:<{width - 2}}{_fixed(r['spearman']):>10}{_fixed(r['pearson']):>10}"
          f"{r['pairs']:>8}{r['oov_pairs']:>8}"
      )
  if results.get("analogy"):
    lines.append(
        f"{'analogy':<{width}}{'3CosAdd':>10}{'3CosMul':>10}{'semantic':>10}{'syntactic':>10}"
        f"{'questions':>10}{'oov':>8}"
    )
    for name, r in results["analogy"].items():
      lines.append(
          f"  {name:<{width - 2}}{_percent(r['accuracy']):>10}{_percent(r['cosmul_accuracy']):>10}"
          f"{_percent(r['semantic']):>10}{_percent(r['syntactic']):>10}"
          f"{r['questions']:>10}{r['oov_questions']:>8}"
      )
      if sections:
        lines.extend(f"    {s:<{width - 4}}{_percent(a):>10}" for s, a in r["sections"].items())
  return "\n".join(lines)


def vectors_for_workdir(workdir: PathLike) -> Path:
  """The vectors file to evaluate for a training workdir: its `vectors.bin`."""
  if not Path(workdir).is_dir():
    raise UserError(f"workdir {workdir}: no such directory")
  path = Path(Workdir(os.fspath(workdir)).vectors_bin)
  if not path.is_file():
    raise UserError(f"workdir {workdir}: no vectors.bin yet; let training finish or pass --vectors")
  return path
