"""A tiny config for tests: small dims and vocabulary thresholds so a run takes seconds."""

import ml_collections

from configs import default


def get_config() -> ml_collections.ConfigDict:
  """Shrinks the default config; tests point corpus at a file they write."""
  config = default.get_config()
  config.dim = 16
  config.window = 3
  config.negative = 3
  config.min_count = 1
  config.epochs = 2
  config.batch_size = 256
  config.block_length = 64
  config.log_every_steps = 5
  config.eval_every_epoch = False
  config.probe_words = ""
  return config
