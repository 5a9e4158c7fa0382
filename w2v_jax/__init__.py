"""w2v_jax: accelerator-native word2vec (skip-gram and CBOW with negative sampling) in JAX.

  kv = w2v_jax.train(sentences, dim=100)   # or a corpus path; returns KeyedVectors
  kv.most_similar(positive=["king", "woman"], negative=["man"])
  kv = w2v_jax.load("runs/x")               # a workdir or any word2vec text/binary file
"""

import importlib

from w2v_jax.errors import UserError

__version__ = "0.1.0"
__all__ = ["KeyedVectors", "UserError", "load", "train"]

# Loaded on first use, so that `import w2v_jax` does not import JAX or TensorFlow.
_LAZY = {"train": "w2v_jax.api", "load": "w2v_jax.keyed_vectors", "KeyedVectors": "w2v_jax.keyed_vectors"}


def __getattr__(name: str):
  if name not in _LAZY:
    raise AttributeError(f"module 'w2v_jax' has no attribute {name!r}")
  return getattr(importlib.import_module(_LAZY[name]), name)


def __dir__() -> list[str]:
  return sorted([*globals(), *_LAZY])
