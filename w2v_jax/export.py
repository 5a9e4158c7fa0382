"""Exports word vectors for the TensorBoard Embedding Projector (projector.tensorflow.org)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np


def write_projector_tsv(out_dir: str | os.PathLike, words: Sequence[str], vectors: np.ndarray) -> None:
  """Writes `vectors.tsv` (one tab-separated row per word) and `metadata.tsv` (one word per line).

  The metadata has a single column and therefore no header line, as the projector expects; load
  both files with its "Load" button. Works for any vectors (input, output or their sum).
  """
  vectors = np.asarray(vectors, dtype=np.float32)
  if vectors.ndim != 2 or vectors.shape[0] != len(words):
    raise ValueError(f"need one vector row per word: {len(words)} words, shape {vectors.shape}")
  os.makedirs(out_dir, exist_ok=True)
  row_format = "\t".join(["%.6g"] * vectors.shape[1])
  with open(os.path.join(out_dir, "vectors.tsv"), "w", encoding="utf-8") as f:
    f.write("".join(row_format % tuple(row) + "\n" for row in vectors.tolist()))
  with open(os.path.join(out_dir, "metadata.tsv"), "w", encoding="utf-8") as f:
    f.write("".join(word + "\n" for word in words))
