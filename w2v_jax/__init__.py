"""w2v_jax: accelerator-native word2vec (skip-gram and CBOW with negative sampling) in JAX."""

__version__ = "0.1.0"
