"""Shared fixtures: corpus writers, a tiny vocabulary, a reference pair list, and skip markers."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Tiny shapes: XLA's LLVM optimisation passes cost far more than they save here (compiles ~3x faster).
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0").strip()

from w2v_jax import logs  # noqa: E402
from w2v_jax.vocab import Vocab  # noqa: E402

logs.setup()  # the package's messages on stdout, as the commands and w2v_jax.train show them

# @pytest.mark.needs_tf etc.: skipped when the optional package is not installed.
_OPTIONAL = {"needs_tf": "tensorflow", "needs_gensim": "gensim", "needs_scipy": "scipy"}


def pytest_configure(config: pytest.Config) -> None:
  for marker, module in _OPTIONAL.items():
    config.addinivalue_line("markers", f"{marker}: skipped when {module} is not installed")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
  for item in items:
    for marker, module in _OPTIONAL.items():
      if item.get_closest_marker(marker) and importlib.util.find_spec(module) is None:
        item.add_marker(pytest.mark.skip(reason=f"{module} is not installed"))


@pytest.fixture
def write_corpus(tmp_path) -> Callable[..., str]:
  """Returns write(name, text_or_bytes) -> path of a new file under tmp_path."""

  def write(name: str, content: str | bytes) -> str:
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return str(path)

  return write


@pytest.fixture
def tiny_vocab() -> Vocab:
  """Five words with distinct counts, already in descending-count order."""
  return Vocab(["the", "cat", "sat", "mat", "dog"], np.array([50, 20, 10, 5, 2], np.int64), 90)


def python_pairs(tokens: np.ndarray, shrink: np.ndarray, window: int) -> list[tuple[int, int, int]]:
  """Valid (block, center, context) positions by definition: both words, same sentence, |o| <= shrink."""
  pairs = []
  batch, length = tokens.shape
  for b in range(batch):
    for i in range(length):
      for o in [*range(-window, 0), *range(1, window + 1)]:
        j = i + o
        if not 0 <= j < length or tokens[b, i] < 0 or tokens[b, j] < 0 or abs(o) > shrink[b, i]:
          continue
        if all(tokens[b, k] >= 0 for k in range(min(i, j), max(i, j) + 1)):
          pairs.append((b, i, j))
  return pairs


@pytest.fixture
def reference_pairs() -> Callable[[np.ndarray, np.ndarray, int], list[tuple[int, int, int]]]:
  """The slow, obviously-correct pair enumeration (see python_pairs)."""
  return python_pairs
