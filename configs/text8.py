"""A text8-sized corpus (about 17M words) at the settings of gensim/word2vec.c.

text8 itself is at http://mattmahoney.net/dc/text8.zip (the first 10^8 bytes of an English Wikipedia dump,
cleaned); pass another corpus of that size with --config.corpus.
"""

import ml_collections

from configs import default


def get_config() -> ml_collections.ConfigDict:
  """The default hyperparameters, pointed at text8.zip in the working directory (set --config.corpus)."""
  config = default.get_config()
  config.corpus = "text8.zip"
  return config
