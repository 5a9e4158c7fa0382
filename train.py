"""Trains word2vec embeddings: python train.py --config configs/default.py --workdir runs/x [--config.dim=300]."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from w2v_jax import trainer  # noqa: E402
from w2v_jax.errors import exit_on_user_error  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", "runs/default", "Where outputs (vocab, vectors, metrics) are written.")
config_flags.DEFINE_config_file("config", "configs/default.py", "Training configuration file.", lock_config=True)


@exit_on_user_error
def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  logging.set_verbosity(logging.WARNING)  # Orbax and TF log every checkpoint step at INFO
  trainer.train_and_evaluate(FLAGS.config, FLAGS.workdir)


if __name__ == "__main__":
  app.run(main)
