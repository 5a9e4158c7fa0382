"""eval.py end to end in a subprocess: JSON shape, queries, projector export, one-line errors."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from w2v_jax.vocab import Vocab
from w2v_jax.word2vec_format import write_word2vec

EVAL = Path(__file__).resolve().parent.parent / "eval.py"


def run_eval(*args: str) -> subprocess.CompletedProcess:
  return subprocess.run(
      [sys.executable, str(EVAL), *args], capture_output=True, text=True, timeout=300, check=False
  )


def small_vectors() -> tuple[list[str], np.ndarray]:
  """Gender x (person, royalty, child) vectors, all the same length, so man:king::woman:queen is
  exact, plus some WordSim-353 words and random fillers."""
  people = {"man": (0, 3), "woman": (1, 3), "king": (0, 4), "queen": (1, 4), "boy": (0, 5),
            "girl": (1, 5)}
  words = [*people, "tiger", "cat", "book", "paper", "computer", "keyboard"]
  words += [f"filler{i}" for i in range(40)]
  rng = np.random.default_rng(0)
  vectors = rng.standard_normal((len(words), 8)).astype(np.float32) * 0.3
  for i, dims in enumerate(people.values()):
    vectors[i] = 0
    vectors[i, list(dims)] = 1
  return words, vectors


@pytest.fixture(scope="module")
def vectors_file(tmp_path_factory) -> Path:
  path = tmp_path_factory.mktemp("vectors") / "vectors.bin"
  write_word2vec(path, *small_vectors(), binary=True)
  return path


def test_bundled_evaluation_json_queries_and_export(vectors_file, tmp_path) -> None:
  result = run_eval(
      "--vectors", str(vectors_file), "--output", str(tmp_path / "r.json"),
      "--neighbors", "king,queen", "--query", "man:king::woman:?", "--export_tsv", str(tmp_path / "tb"),
  )
  assert result.returncode == 0, result.stderr
  assert result.stderr == ""
  lines = result.stdout.splitlines()
  assert lines[0] == f"{vectors_file}: 52 words, dimension 8"
  assert any(line.startswith("man:king::woman:? queen 1.000") for line in lines)
  assert any(line.startswith("king: ") for line in lines)
  assert any(line.startswith("  questions-words") for line in lines)

  report = json.loads((tmp_path / "r.json").read_text())
  assert report["vectors"] == {"path": str(vectors_file), "words": 52, "dim": 8}
  assert set(report) == {"vectors", "similarity", "analogy"}
  assert list(report["similarity"]) == [
      "wordsim353", "wordsim353_similarity", "wordsim353_relatedness", "simlex999"
  ]
  for name, scores in report["similarity"].items():
    assert set(scores) == {"spearman", "pearson", "pairs", "oov_pairs"}, name
    assert all(isinstance(scores[k], int) for k in ("pairs", "oov_pairs"))
    assert all(scores[k] is None or isinstance(scores[k], float) for k in ("spearman", "pearson"))
  assert isinstance(report["similarity"]["wordsim353"]["spearman"], float)
  wordsim = report["similarity"]["wordsim353"]
  assert wordsim["pairs"] > 2 and wordsim["pairs"] + wordsim["oov_pairs"] == 353
  assert list(report["analogy"]) == ["questions-words"]
  analogy = report["analogy"]["questions-words"]
  assert set(analogy) == {
      "accuracy", "cosmul_accuracy", "questions", "oov_questions", "semantic", "syntactic", "sections"
  }
  assert analogy["questions"] == 6 and analogy["oov_questions"] == 19538  # boy:girl::king:queen ...
  assert analogy["accuracy"] == 1.0 and isinstance(analogy["cosmul_accuracy"], float)
  assert analogy["semantic"] == 1.0 and analogy["syntactic"] == 0.0
  assert len(analogy["sections"]) == 14 and analogy["sections"]["family"] == 1.0

  assert (tmp_path / "tb" / "metadata.tsv").read_text().splitlines()[:2] == ["man", "woman"]
  rows = (tmp_path / "tb" / "vectors.tsv").read_text().splitlines()
  assert len(rows) == 52 and len(rows[0].split("\t")) == 8


def test_workdir_and_own_benchmarks_only(vectors_file, tmp_path) -> None:
  """--no_bundled with --similarity/--analogy: only the user's files, named after their stems."""
  (tmp_path / "pairs.txt").write_text("tiger cat 7\nbook paper 5\nking queen 8\n")
  (tmp_path / "royal.txt").write_text("man king woman queen\nking man queen woman\n")
  result = run_eval(
      "--workdir", str(vectors_file.parent), "--no_bundled", "--similarity",
      str(tmp_path / "pairs.txt"), "--analogy", str(tmp_path / "royal.txt"),
      "--output", str(tmp_path / "r.json"), "--case_sensitive", "--restrict_vocab", "0",
  )
  assert result.returncode == 0, result.stderr
  report = json.loads((tmp_path / "r.json").read_text())
  assert report["vectors"]["path"] == str(vectors_file)
  assert list(report["similarity"]) == ["pairs"] and report["similarity"]["pairs"]["pairs"] == 3
  royal = report["analogy"]["royal"]
  assert isinstance(royal.pop("cosmul_accuracy"), float)  # random fillers can win under 3CosMul
  assert report["analogy"] == {"royal": {
      "accuracy": 1.0, "questions": 2, "oov_questions": 0, "semantic": None, "syntactic": None,
      "sections": {"royal": 1.0},
  }}


def _write(path: Path, content: bytes) -> str:
  path.write_bytes(content)
  return str(path)


def _garbage_config_workdir(workdir: Path) -> str:
  """A workdir with a vocabulary and a checkpoint directory, whose config.json is not JSON."""
  workdir.mkdir()
  Vocab(["a", "b"], np.array([2, 1]), 3).save(str(workdir))
  (workdir / "checkpoints" / "1").mkdir(parents=True)
  (workdir / "config.json").write_bytes(b"\x00garbage{")
  return str(workdir)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing", r"missing\.bin: vectors file not found"),
        ("short", r"header says 3 words but the file has 2 rows"),
        ("width", r"line 3: word 'b' has 1 values, header says 2"),
        ("duplicate", r"line 3: duplicate word 'a' \(first at line 2\)"),
        ("empty benchmark", r"empty\.txt: no 'word1 word2 score' lines"),
        ("no source", r"give exactly one of --vectors FILE or --workdir DIR"),
        ("bad query", r"--query 'man:king:woman': write it as 'a:b::c:\?'"),
        ("unknown word", r"word 'zebra' is not in the vocabulary"),
        ("nan rows", r"nan\.txt: 2 of 3 vectors hold NaN or inf values \(the first: 'money'\)"),
        ("garbage config", r"config\.json: cannot read the run's dim \(JSONDecodeError"),
        ("bad flag value", r"flag --restrict_vocab=abc: invalid literal"),
    ],
)
def test_user_errors_are_one_line_with_status_2(tmp_path, vectors_file, case, message) -> None:
  good = str(vectors_file)
  args = {
      "missing": ["--vectors", str(tmp_path / "missing.bin")],
      "short": ["--vectors", _write(tmp_path / "short.txt", b"3 2\na 1 2\nb 3 4\n")],
      "width": ["--vectors", _write(tmp_path / "width.txt", b"2 2\na 1 2\nb 3\n")],
      "duplicate": ["--vectors", _write(tmp_path / "duplicate.txt", b"2 2\na 1 2\na 3 4\n")],
      "empty benchmark": ["--vectors", good, "--no_bundled",
                          "--similarity", _write(tmp_path / "empty.txt", b"# nothing\n")],
      "no source": [],
      "bad query": ["--vectors", good, "--query", "man:king:woman"],
      "unknown word": ["--vectors", good, "--no_bundled", "--neighbors", "king,zebra"],
      "nan rows": ["--vectors", _write(tmp_path / "nan.txt", b"3 2\nmoney nan 1\nthe 1 2\ncash 1 -inf\n"),
                   "--no_bundled", "--neighbors", "money"],
      "garbage config": ["--workdir", _garbage_config_workdir(tmp_path / "run"), "--no_bundled"],
      "bad flag value": ["--vectors", good, "--restrict_vocab=abc"],
  }[case]
  result = run_eval(*args)
  assert result.returncode == 2
  assert "Traceback" not in result.stderr
  assert len(result.stderr.splitlines()) == 1, result.stderr
  assert result.stderr.startswith("error: ")
  assert re.search(message, result.stderr), result.stderr
