"""Trains word2vec embeddings: python train.py --config configs/default.py --workdir runs/x [--config.dim=300].

Exit status: 0 when the run finished and wrote its vectors; 2 for a mistake in the flags, config or input (one
`error:` line on stderr); 75 (EX_TEMPFAIL, sysexits.h) when SIGTERM or Ctrl-C stopped it after saving a
checkpoint: the same command resumes it.
"""

import importlib.util
import os
import re

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from w2v_jax import config_names  # noqa: E402
from w2v_jax.errors import UserError, exit_on_user_error  # noqa: E402

EXIT_STOPPED = 75  # stopped by a signal with a checkpoint saved; rerun to resume (sysexits' EX_TEMPFAIL)
DEFAULT_CONFIG = "configs/default.py"

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", "runs/default", "Where outputs (vocab, vectors, metrics) are written.")
# No default here: ml_collections would load it, and apply --config.<field> overrides, while this module is
# imported, before parse_flags can report a mistake in one line; parse_flags supplies DEFAULT_CONFIG instead.
config_flags.DEFINE_config_file("config", None, f"Training configuration file (default {DEFAULT_CONFIG}).",
                                lock_config=True)


def config_path(argv: list[str]) -> str:
  """The config file that argv names (the last --config, as absl takes it), without a ':argument' suffix."""
  path = DEFAULT_CONFIG
  for i, arg in enumerate(argv[1:], start=1):
    if arg == "--":
      break
    name, eq, value = arg.lstrip("-").partition("=")
    if arg.startswith("-") and name == "config":
      path = value if eq else (argv[i + 1] if i + 1 < len(argv) else path)
  return path.split(":", 1)[0]


def config_fields(path: str) -> list[str]:
  """The field names of the config file at path (it loaded before the override failed)."""
  spec = importlib.util.spec_from_file_location("user_config", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return list(module.get_config().keys())


@exit_on_user_error
def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing and the config file's loading, every mistake one error line with status 2 (absl's
  own handler prints its usage text and exits 1)."""
  path = config_path(argv)
  if not any(arg.lstrip("-").partition("=")[0] == "config" for arg in argv[1:]):
    argv = [argv[0], f"--config={DEFAULT_CONFIG}", *argv[1:]]
  if not os.path.isfile(path):
    raise UserError(f"--config={path}: no such config file (see configs/)")
  try:
    args = FLAGS(argv)
    FLAGS.config  # noqa: B018  (loads the config file where no --config.<field> override has)
  except flags.Error as e:
    raise UserError(f"{str(e).splitlines()[0]}; see --helpfull") from None
  except Exception as e:  # the config file is the user's Python: any error in it is theirs
    found = re.search(r"[A-Za-z_]\w*", str(e))  # ml_collections quotes the key, maybe twice, maybe with a hint
    name = found.group() if found else ""
    if isinstance(e, AttributeError | KeyError) and any(f"config.{name}" in arg for arg in argv):
      raise UserError(f"--config.{name}: {config_names.unknown_field(name, config_fields(path))} "
                      f"(the fields: {path})") from None
    raise UserError(f"--config={path}: cannot load it ({type(e).__name__}: {str(e).splitlines()[0]})") from None
  if len(args) > 1:
    raise UserError(f"unexpected arguments {' '.join(args[1:])!r}; flags are written --name=value (see --helpfull)")
  return args


@exit_on_user_error
def main(argv: list[str]) -> int:
  del argv  # parse_flags refused any positional argument
  logging.set_verbosity(logging.WARNING)  # Orbax and TF log every checkpoint step at INFO
  from w2v_jax import trainer  # here, so that a mistake in the flags is reported before JAX and TF load

  summary = trainer.train_and_evaluate(FLAGS.config, FLAGS.workdir)
  return EXIT_STOPPED if "stopped_at_step" in summary else 0


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)
