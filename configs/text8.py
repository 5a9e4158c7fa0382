"""text8-sized corpus (about 17M words), e.g. ../shared/data/wiki2015_text8like.zip; settings of gensim/word2vec.c."""

import ml_collections

from configs import default


def get_config() -> ml_collections.ConfigDict:
  """The default hyperparameters, pointed at a text8-like corpus (set --config.corpus)."""
  config = default.get_config()
  config.corpus = "../shared/data/wiki2015_text8like.zip"
  return config
