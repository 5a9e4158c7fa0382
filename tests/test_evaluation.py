"""evaluation: same numbers as gensim on the bundled benchmarks, exact planted analogies, parsing."""

from __future__ import annotations

import numpy as np
import pytest

from w2v_jax import evaluation
from w2v_jax.errors import UserError

BUNDLED = evaluation.bundled_benchmarks()
QUESTIONS = BUNDLED["analogy"][0]
DIM = 20


def benchmark_words() -> list[str]:
  """Every word of the bundled benchmark files, in first-seen order."""
  words = [w for q in evaluation.load_analogies(QUESTIONS) for w in q[1:]]
  for path in BUNDLED["similarity"]:
    words += [w for a, b, _ in evaluation.load_similarity(path) for w in (a, b)]
  return list(dict.fromkeys(words))


def planted_vectors(seed: int = 0) -> tuple[list[str], np.ndarray]:
  """About 3,000 words: the benchmark words, case variants of some, and fillers, shuffled.

  Vectors are random, except that within each analogy section the second word of a pair is the
  first plus the section's offset plus noise, so that a good share of the questions are answerable.
  Case variants are near-copies of their word, so they often rank right after a, b or c.
  """
  rng = np.random.default_rng(seed)
  words = benchmark_words()
  capitalised = [w for w in words if w[0].isupper()]
  variants = [w.lower() for w in capitalised[::3]] + [w.upper() for w in capitalised[1::4]]
  fillers = [f"filler{i}" for i in range(500)]
  words = list(dict.fromkeys(words + variants + fillers))
  index = {w: i for i, w in enumerate(words)}
  vectors = rng.standard_normal((len(words), DIM))
  planted: set[str] = set()
  offsets: dict[str, np.ndarray] = {}
  for section, a, b, c, d in evaluation.load_analogies(QUESTIONS):
    offset = offsets.setdefault(section, rng.standard_normal(DIM))
    for x, y in ((a, b), (c, d)):
      if y not in planted:
        vectors[index[y]] = vectors[index[x]] + offset + 0.6 * rng.standard_normal(DIM)
        planted.add(y)
  for variant in variants:
    original = next(w for w in capitalised if w.upper() == variant.upper())
    vectors[index[variant]] = vectors[index[original]] + 0.05 * rng.standard_normal(DIM)
  order = rng.permutation(len(words))
  return [words[i] for i in order], vectors[order].astype(np.float32)


@pytest.fixture(scope="module")
def planted():
  words, vectors = planted_vectors()
  return words, vectors, evaluation.Embeddings(words, vectors)


def gensim_keyed_vectors(words: list[str], vectors: np.ndarray):
  """gensim KeyedVectors holding the same vectors in the same order (gensim: test-only)."""
  from gensim.models import KeyedVectors  # noqa: PLC0415 - test-only dependency

  kv = KeyedVectors(vectors.shape[1])
  kv.add_vectors(words, vectors)
  return kv


def test_case_insensitive_lookup_takes_the_first_variant() -> None:
  emb = evaluation.Embeddings(["paris", "Paris", "PARIS", "Rome"], np.eye(4, dtype=np.float32))
  assert [emb.lookup(w, True) for w in ("Paris", "pArIs", "ROME", "rome")] == [0, 0, 3, 3]
  assert [emb.lookup(w, False) for w in ("Paris", "pArIs", "rome")] == [1, None, None]


def test_planted_vectors_exercise_case_folding(planted) -> None:
  """Many words share a case-folded form, and the benchmark's spelling is not always first."""
  words, _, emb = planted
  groups: dict[str, list[int]] = {}
  for i, word in enumerate(words):
    groups.setdefault(word.upper(), []).append(i)
  shared = [g for g in groups.values() if len(g) > 1]
  assert len(shared) > 100
  assert all(emb.lookup(words[i], True) == g[0] for g in shared for i in g)
  assert any(emb.lookup(w, True) != emb.index[w] for w in benchmark_words())


@pytest.mark.needs_gensim
@pytest.mark.parametrize("case_insensitive", [True, False])
@pytest.mark.parametrize("path", BUNDLED["similarity"], ids=lambda p: p.stem)
def test_similarity_matches_gensim(planted, path, case_insensitive: bool) -> None:
  words, vectors, emb = planted
  kv = gensim_keyed_vectors(words, vectors)
  pearson, spearman, oov_ratio = kv.evaluate_word_pairs(str(path), case_insensitive=case_insensitive)
  ours = evaluation.evaluate_similarity(emb, path, case_insensitive=case_insensitive)
  assert ours["pearson"] == pytest.approx(pearson[0], abs=1e-6)
  assert ours["spearman"] == pytest.approx(spearman[0], abs=1e-6)
  assert 100 * ours["oov_pairs"] / (ours["pairs"] + ours["oov_pairs"]) == pytest.approx(oov_ratio)
  assert ours["pairs"] + ours["oov_pairs"] == len(evaluation.load_similarity(path))


@pytest.fixture(scope="module")
def google_subset(tmp_path_factory):
  """Every 5th question of the Google set (3,909), sections kept: quicker to compare with gensim."""
  path = tmp_path_factory.mktemp("analogies") / "google-subset.txt"
  lines, section = [], None
  for name, a, b, c, d in evaluation.load_analogies(QUESTIONS)[::5]:
    if name != section:
      lines.append(f": {name}")
      section = name
    lines.append(f"{a} {b} {c} {d}")
  path.write_text("\n".join(lines) + "\n")
  return path


@pytest.fixture(scope="module")
def google_results(planted, google_subset):
  """Ours and gensim's results with the defaults (restrict_vocab 30000, case-insensitive)."""
  words, vectors, emb = planted
  kv = gensim_keyed_vectors(words, vectors)
  return evaluation.evaluate_analogy(emb, google_subset), kv.evaluate_word_analogies(
      str(google_subset), restrict_vocab=30000
  )


def assert_same_as_gensim(ours: dict, score: float, sections: list[dict]) -> None:
  total = sections[-1]
  assert total["section"] == "Total accuracy"
  assert ours["accuracy"] == score
  assert ours["questions"] == len(total["correct"]) + len(total["incorrect"])
  expected_sections = {
      s["section"]: len(s["correct"]) / max(1, len(s["correct"]) + len(s["incorrect"]))
      for s in sections[:-1]
  }
  assert ours["sections"] == expected_sections


@pytest.mark.needs_gensim
def test_analogy_accuracy_matches_gensim_exactly(google_results) -> None:
  ours, (score, sections) = google_results
  assert_same_as_gensim(ours, score, sections)
  assert ours["questions"] + ours["oov_questions"] == 3909
  assert 0.2 < score < 0.9  # the planted structure makes the comparison meaningful


@pytest.mark.needs_gensim
@pytest.mark.parametrize(
    ("restrict_vocab", "case_insensitive"), [(30000, False), (500, True), (1500, False)]
)
def test_analogy_accuracy_matches_gensim_in_other_settings(
    planted, google_subset, restrict_vocab: int, case_insensitive: bool
) -> None:
  words, vectors, emb = planted
  kv = gensim_keyed_vectors(words, vectors)
  score, sections = kv.evaluate_word_analogies(
      str(google_subset), restrict_vocab=restrict_vocab, case_insensitive=case_insensitive
  )
  ours = evaluation.evaluate_analogy(emb, google_subset, restrict_vocab, case_insensitive)
  assert_same_as_gensim(ours, score, sections)
  assert ours["questions"] > 10
  if restrict_vocab < len(words):
    assert ours["oov_questions"] > 0


@pytest.mark.needs_gensim
def test_semantic_and_syntactic_split(google_results, google_subset) -> None:
  """Google set: 5 semantic sections and 9 'gram' (syntactic) ones, all questions answerable."""
  ours, _ = google_results
  assert ours["questions"] == 3909
  names = list(ours["sections"])
  assert len(names) == 14 and sum(n.startswith("gram") for n in names) == 9
  questions = evaluation.load_analogies(google_subset)
  counts = {n: sum(q[0] == n for q in questions) for n in names}
  semantic = sum(ours["sections"][n] * counts[n] for n in names if not n.startswith("gram"))
  syntactic = sum(ours["sections"][n] * counts[n] for n in names if n.startswith("gram"))
  num_semantic = sum(counts[n] for n in names if not n.startswith("gram"))
  assert ours["semantic"] == pytest.approx(semantic / num_semantic)
  assert ours["syntactic"] == pytest.approx(syntactic / (3909 - num_semantic))
  assert ours["accuracy"] == pytest.approx((semantic + syntactic) / 3909)
  assert ours["semantic"] != ours["syntactic"]


@pytest.mark.needs_gensim
@pytest.mark.filterwarnings("ignore:Call to deprecated `init_sims`:DeprecationWarning")
def test_cosmul_matches_gensim_most_similar_cosmul(planted, tmp_path) -> None:
  """3CosMul over all words, case-sensitive: each answer as gensim's most_similar_cosmul top-1."""
  words, vectors, emb = planted
  kv = gensim_keyed_vectors(words, vectors)
  questions = evaluation.load_analogies(QUESTIONS)[::50]
  path = tmp_path / "some.txt"
  path.write_text("".join(f"{a} {b} {c} {d}\n" for _, a, b, c, d in questions))
  gensim_correct = sum(
      kv.most_similar_cosmul(positive=[b, c], negative=[a], topn=1)[0][0] == d
      for _, a, b, c, d in questions
  )
  ours = evaluation.evaluate_analogy(emb, path, restrict_vocab=0, case_insensitive=False)
  assert ours["questions"] == len(questions)
  assert round(ours["cosmul_accuracy"] * len(questions)) == gensim_correct
  assert 0 < gensim_correct < len(questions)
  assert ours["cosmul_accuracy"] != ours["accuracy"]  # a different objective, not a copy


def write_exact_analogies(tmp_path) -> tuple[evaluation.Embeddings, str]:
  """Vectors with b - a + c = d exactly (before normalising): countries/capitals, plurals."""
  pairs = {
      "capitals": [("france", "paris"), ("japan", "tokyo"), ("italy", "rome"), ("spain", "madrid")],
      "gram8-plural": [("cat", "cats"), ("dog", "dogs"), ("car", "cars"), ("tree", "trees")],
  }
  words, rows = [], []
  for k, section_pairs in enumerate(pairs.values()):
    for i, (x, y) in enumerate(section_pairs):
      concept = np.eye(12)[4 * k + i]
      relation = np.eye(12)[8 + k] * 0.8
      words += [x, y]
      rows += [concept, concept + relation]
  lines = []
  for section, section_pairs in pairs.items():
    lines.append(f": {section}")
    lines += [f"{a} {b} {c} {d}" for a, b in section_pairs for c, d in section_pairs if a != c]
  path = tmp_path / "exact.txt"
  path.write_text("\n".join(lines) + "\n")
  return evaluation.Embeddings(words, np.array(rows, np.float32)), str(path)


def test_exactly_solvable_analogies_score_one(tmp_path) -> None:
  emb, path = write_exact_analogies(tmp_path)
  result = evaluation.evaluate_analogy(emb, path)
  assert result == {
      "accuracy": 1.0,
      "cosmul_accuracy": 1.0,
      "questions": 24,
      "oov_questions": 0,
      "semantic": 1.0,
      "syntactic": 1.0,
      "sections": {"capitals": 1.0, "gram8-plural": 1.0},
  }
  # Answers come only from the first restrict_vocab words; questions outside it are skipped.
  restricted = evaluation.evaluate_analogy(emb, path, restrict_vocab=8)
  assert restricted["questions"] == 12 and restricted["oov_questions"] == 12
  assert restricted["syntactic"] == 0.0


@pytest.mark.needs_gensim
@pytest.mark.parametrize("num_variants", [4, 5])
def test_case_variants_follow_gensims_top5_rule(tmp_path, num_variants: int) -> None:
  """gensim skips case variants of a, b, c only among its top 5; if all 5 are, it answers the 5th.

  Here the variants of "king" are the closest words to king - man + woman. With 4 of them the 5th
  answer is queen; with 5, gensim answers KING, which counts as correct for man:king::woman:king.
  """
  variants = ["King", "KING", "kIng", "kiNg", "kinG"][:num_variants]
  words = ["man", "king", "woman", "queen", *variants, *[f"w{i}" for i in range(20)]]
  rng = np.random.default_rng(3)
  vectors = rng.standard_normal((len(words), 8)).astype(np.float32) * 0.1
  vectors[:3] += np.eye(8)[:3] * 3
  target = vectors[1] - vectors[0] + vectors[2]
  vectors[3] = target + rng.standard_normal(8) * 0.3
  for i in range(num_variants):
    vectors[4 + i] = target + rng.standard_normal(8) * 0.01 * (i + 1)
  kv = gensim_keyed_vectors(words, vectors)
  emb = evaluation.Embeddings(words, vectors)
  for expected, gensim_right in (("queen", num_variants == 4), ("king", num_variants == 5)):
    path = tmp_path / f"{expected}.txt"
    path.write_text(f": family\nman king woman {expected}\n")
    score, _ = kv.evaluate_word_analogies(str(path))
    assert score == float(gensim_right)
    assert evaluation.evaluate_analogy(emb, path)["accuracy"] == score, expected


def test_nearest_neighbors_and_analogy_query(tmp_path) -> None:
  emb, _ = write_exact_analogies(tmp_path)
  neighbors = evaluation.nearest_neighbors(emb, "paris", topn=3)
  assert neighbors[0][0] == "france"
  assert neighbors[0][1] == pytest.approx(1 / np.sqrt(1.64))
  assert all(w != "paris" for w, _ in neighbors)
  assert [s for _, s in neighbors] == sorted((s for _, s in neighbors), reverse=True)
  answers = evaluation.analogy_query(emb, "france", "paris", "japan", topn=2)
  assert answers[0][0] == "tokyo"
  assert answers[0][1] > 0.9 > answers[1][1]
  assert evaluation.nearest_neighbors(emb, "Paris", topn=1)[0][0] == "france"  # case fallback
  with pytest.raises(UserError, match="'berlin' is not in the vocabulary"):
    evaluation.analogy_query(emb, "france", "paris", "berlin")


@pytest.mark.needs_gensim
def test_nearest_neighbors_match_gensim_most_similar(planted) -> None:
  words, vectors, emb = planted
  kv = gensim_keyed_vectors(words, vectors)
  for word in ("king", "Paris", "walking"):
    ours = evaluation.nearest_neighbors(emb, word, topn=5)
    theirs = kv.most_similar(word, topn=5)
    assert [w for w, _ in ours] == [w for w, _ in theirs]
    np.testing.assert_allclose([s for _, s in ours], [s for _, s in theirs], atol=1e-6)


def test_evaluate_all_defaults_and_table(planted) -> None:
  _, _, emb = planted
  results = evaluation.evaluate_all(emb, restrict_vocab=200)  # few answerable: quick
  assert set(results) == {"similarity", "analogy"}
  assert list(results["similarity"]) == [
      "wordsim353", "wordsim353_similarity", "wordsim353_relatedness", "simlex999"
  ]
  assert list(results["analogy"]) == ["questions-words"]
  assert results["similarity"]["wordsim353"]["pairs"] == 353
  assert results["analogy"]["questions-words"] == evaluation.evaluate_analogy(emb, QUESTIONS, 200)
  table = evaluation.format_results(results, sections=True)
  assert "wordsim353_relatedness" in table and "gram9-plural-verbs" in table
  assert "gram9-plural-verbs" not in evaluation.format_results(results)


def test_evaluate_all_scores_two_files_of_one_name_apart(planted, tmp_path) -> None:
  """A user's file named as a bundled one is scored under a name with its path; an identical copy only once."""
  _, _, emb = planted
  other = tmp_path / "wordsim353.txt"
  other.write_text("tiger cat 7.35\nbook paper 7.46\ncomputer keyboard 7.62\n")
  results = evaluation.evaluate_all(emb, [BUNDLED["similarity"][0], other], [])
  assert list(results["similarity"]) == ["wordsim353", f"wordsim353 ({other})"]
  assert results["similarity"][f"wordsim353 ({other})"] == evaluation.evaluate_similarity(emb, other)
  copy = tmp_path / "copy" / BUNDLED["similarity"][0].name
  copy.parent.mkdir()
  copy.write_bytes(BUNDLED["similarity"][0].read_bytes())
  assert list(evaluation.evaluate_all(emb, [BUNDLED["similarity"][0], copy], [])["similarity"]) == ["wordsim353"]


def test_similarity_correlation_is_nan_when_undefined(tmp_path) -> None:
  """One known pair, or constant human scores: no correlation (NaN, as scipy), no warning."""
  emb = evaluation.Embeddings(["tiger", "cat", "book", "paper"], np.eye(4, dtype=np.float32))
  (tmp_path / "one.txt").write_text("tiger cat 7.35\nbook pen 7.46\n")
  (tmp_path / "flat.txt").write_text("tiger cat 5\nbook paper 5\ntiger book 5\n")
  one = evaluation.evaluate_similarity(emb, tmp_path / "one.txt")
  assert np.isnan(one["spearman"]) and np.isnan(one["pearson"])
  assert (one["pairs"], one["oov_pairs"]) == (1, 1)
  flat = evaluation.evaluate_similarity(emb, tmp_path / "flat.txt")
  assert np.isnan(flat["spearman"]) and flat["pairs"] == 3


def test_load_similarity_formats(tmp_path) -> None:
  path = tmp_path / "pairs.txt"
  path.write_bytes(b"# comment\r\nWord1 Word2 Score\r\ntiger\tcat\t7.35\r\n\r\nbook  paper 7.46\r\n")
  assert evaluation.load_similarity(path) == [("tiger", "cat", 7.35), ("book", "paper", 7.46)]
  assert len(evaluation.load_similarity(BUNDLED["similarity"][3])) == 999


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("# only comments\n\n", r"no 'word1 word2 score' lines"),
        ("w1 w2 score\nheader again\n", r"line 2: expected 'word1 word2 score'"),
        ("tiger cat 7\ntiger cat\n", r"line 2: expected 'word1 word2 score'"),
        ("tiger cat 7\ntiger cat seven\n", r"line 2: expected 'word1 word2 score'"),
    ],
)
def test_bad_similarity_files(tmp_path, content: str, message: str) -> None:
  (tmp_path / "pairs.txt").write_text(content)
  with pytest.raises(UserError, match=message):
    evaluation.load_similarity(tmp_path / "pairs.txt")


def test_load_analogies_formats(tmp_path) -> None:
  path = tmp_path / "my-set.txt"
  path.write_bytes(b"a b c d\r\n\r\ne f g h\r\n")
  assert evaluation.load_analogies(path) == [
      ("my-set", "a", "b", "c", "d"), ("my-set", "e", "f", "g", "h")
  ]
  path.write_text(": one\na b c d\n: gram-two\ne f g h\n")
  assert [q[0] for q in evaluation.load_analogies(path)] == ["one", "gram-two"]
  assert len(evaluation.load_analogies(QUESTIONS)) == 19544


def test_analogy_file_without_sections_has_no_split(tmp_path) -> None:
  emb, exact = write_exact_analogies(tmp_path)
  path = tmp_path / "plain.txt"
  path.write_text("\n".join(line for line in open(exact).read().splitlines() if ":" not in line))
  result = evaluation.evaluate_analogy(emb, path)
  assert result["semantic"] is None and result["syntactic"] is None
  assert result["sections"] == {"plain": 1.0}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", r"no 'a b c d' question lines"),
        (": only a section\n", r"no 'a b c d' question lines"),
        ("a b c d\n: section\ne f g h\n", r"line 1: question before the first ': section' line"),
        (": s\na b c\n", r"line 2: expected a question 'a b c d'"),
    ],
)
def test_bad_analogy_files(tmp_path, content: str, message: str) -> None:
  (tmp_path / "q.txt").write_text(content)
  with pytest.raises(UserError, match=message):
    evaluation.load_analogies(tmp_path / "q.txt")


def test_missing_benchmark_file(tmp_path) -> None:
  with pytest.raises(UserError, match="similarity file not found"):
    evaluation.load_similarity(tmp_path / "none.txt")


def test_restrict_vocab_must_not_be_negative(tmp_path) -> None:
  emb, path = write_exact_analogies(tmp_path)
  with pytest.raises(UserError, match="restrict_vocab must be >= 0"):
    evaluation.evaluate_analogy(emb, path, restrict_vocab=-1)


def test_vectors_for_workdir(tmp_path) -> None:
  with pytest.raises(UserError, match="no such directory"):
    evaluation.vectors_for_workdir(tmp_path / "missing")
  with pytest.raises(UserError, match="no vectors.bin yet"):
    evaluation.vectors_for_workdir(tmp_path)
  (tmp_path / "vectors.bin").write_bytes(b"0 1\n")
  assert evaluation.vectors_for_workdir(tmp_path) == tmp_path / "vectors.bin"
