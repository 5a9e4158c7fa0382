"""A GPU or TPU (or N of them): tens of thousands of tokens per update, so each device call has work to do.

python train.py --config configs/accelerator.py --config.corpus=CORPUS --workdir runs/gpu
"""

import ml_collections

from configs import default


def get_config() -> ml_collections.ConfigDict:
  """The default hyperparameters with large steps and updates; the update rule is the default's."""
  config = default.get_config()
  # 65,536 tokens per step and per synchronous update (over all devices): 16 updates per 1M tokens, each
  # with a fresh curvature shape. The damping keeps the default's quality at this size (BENCHMARKS.md); on N
  # devices each holds 65,536 / N of them.
  config.batch_size = 1 << 16
  config.update_size = 0
  # Accelerator machines need no TensorFlow: the step is fed from the token cache directly.
  config.input = "numpy"
  # Every curvature direction damped one by one (0: all dim of them): cheap on an accelerator's matrix units.
  config.curvature_rank = 0
  # Report about every 1M tokens, on the console and to TensorBoard (each report waits for the device).
  config.log_every_steps = 16
  config.tensorboard_every_steps = 16
  return config
