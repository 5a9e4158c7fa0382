"""The One Billion Word benchmark (~0.8B words, 30M sentences) through TFDS: python train.py --config configs/lm1b.py.

TFDS downloads and prepares lm1b on first use (~1.8 GB) into --config.tfds_data_dir; the vocabulary pass
and the token cache (~3.2 GB, 4 bytes a word) are made once per workdir and reused.
"""

import ml_collections

from configs import default


def get_config() -> ml_collections.ConfigDict:
  """Hyperparameters for a corpus ~50x text8."""
  config = default.get_config()
  config.corpus = "tfds:lm1b"
  config.tfds_split = "train"
  config.tfds_text_key = "text"
  # lm1b is already tokenized and case-preserving; lowercasing merges 'The'/'the' as the evaluation expects.
  config.lowercase = True
  # A billion tokens give frequent words ~1000x more occurrences than needed: 1e-4 drops more of them
  # (word2vec.c's recommendation for large corpora), so rare words get more of the training time.
  config.sample = 1e-4
  # Words seen < 10 times in ~0.8B tokens get noisy vectors and bloat the tables; also sizes the vocab ~0.5M.
  config.min_count = 10
  # Counting memory stays bounded even if the text holds tens of millions of distinct junk tokens.
  config.max_vocab_size = 10_000_000
  # Each pass is ~50 text8 epochs of updates: quality saturates after a few (word2vec's 1B-word runs used 1-3).
  config.epochs = 3
  # 300 dimensions: a large corpus supports them (the published GoogleNews vectors use 300).
  config.dim = 300
  # Larger steps amortise dispatch; each is still applied as sequential updates of update_size tokens, and
  # the learning-rate schedule is in words, so it needs no change. Raise further on a GPU (e.g. 262144).
  config.batch_size = 32768
  # Hours-long runs: a checkpoint every 10 minutes bounds lost work; saves are asynchronous.
  config.checkpoint_every_secs = 600.0
  # A progress line about every 30M tokens, TensorBoard metrics about every 3M.
  config.log_every_steps = 1000
  config.tensorboard_every_steps = 100
  return config
