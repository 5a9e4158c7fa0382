"""Trains word2vec embeddings: w2v-jax train --config configs/default.py --workdir runs/x [--config.dim=300].

Exit status: 0 when the run finished and wrote its vectors; 2 for a mistake in the flags, config or input (one
`error:` line on stderr); 75 (EX_TEMPFAIL, sysexits.h) when SIGTERM or Ctrl-C stopped it after saving a
checkpoint: the same command resumes it.
"""

import importlib.util
import os
import re
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported
# Before JAX loads scipy's OpenBLAS: the step's two small eigendecompositions call it, and its own thread pool then
# fights XLA's threads for the cores (a 100 x 100 eigh took 88 ms instead of 0.9 ms on a loaded 2-core machine).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from w2v_jax import config_names, logs  # noqa: E402
from w2v_jax.commands import list_flags_in_help  # noqa: E402
from w2v_jax.errors import UserError, exit_on_user_error, first_line  # noqa: E402

EXIT_STOPPED = 75  # stopped by a signal with a checkpoint saved; rerun to resume (sysexits' EX_TEMPFAIL)
DEFAULT_CONFIG = "configs/default.py"

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", "runs/default", "Where outputs (vocab, vectors, metrics) are written.")
flags.DEFINE_bool("quiet", False, "Log only warnings and errors (no progress lines, scores or neighbours).")
# No default here: ml_collections would load it, and apply --config.<field> overrides, while this module is
# imported, before parse_flags can report a mistake in one line; parse_flags supplies DEFAULT_CONFIG instead.
config_flags.DEFINE_config_file("config", None, f"Training configuration file (default {DEFAULT_CONFIG}; "
                                "configs/NAME.py is also found in the installed configs package).",
                                lock_config=True)


def find_config(path: str) -> str:
  """path if it is a file, else the same name in the installed configs package (configs/tiny.py from any
  directory), else path unchanged."""
  if os.path.isfile(path):
    return path
  spec = importlib.util.find_spec("configs")
  parts = Path(path).parts
  if spec is None or not spec.submodule_search_locations or not parts:
    return path
  relative = Path(*parts[1:]) if parts[0] == "configs" and len(parts) > 1 else Path(path)
  for location in spec.submodule_search_locations:
    candidate = Path(location) / relative
    if candidate.is_file():
      return str(candidate)
  return path


def with_config(argv: list[str]) -> tuple[list[str], str]:
  """argv with the config file it names (the last --config, as absl takes it; DEFAULT_CONFIG if none) found by
  find_config, its ':argument' suffix kept; and that file's path."""
  argv, at = list(argv), None  # at: (index of the --config argument, whether its value is in the same argument)
  for i, arg in enumerate(argv[1:], start=1):
    if arg == "--":
      break
    name, eq, _ = arg.lstrip("-").partition("=")
    if arg.startswith("-") and name == "config" and (eq or i + 1 < len(argv)):
      at = (i, bool(eq))
  if at is None:
    path = find_config(DEFAULT_CONFIG)
    return [argv[0], f"--config={path}", *argv[1:]], path
  i, inline = at
  path, colon, argument = (argv[i].partition("=")[2] if inline else argv[i + 1]).partition(":")
  path = find_config(path)
  if inline:
    argv[i] = f"--config={path}{colon}{argument}"
  else:
    argv[i + 1] = path + colon + argument
  return argv, path


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
  argv, path = with_config(argv)
  if not os.path.isfile(path):
    raise UserError(f"--config={path}: no such config file (see configs/)")
  try:
    args = FLAGS(argv)
    FLAGS.config  # noqa: B018  (loads the config file where no --config.<field> override has)
  except flags.Error as e:
    raise UserError(f"{first_line(e)}; see --helpfull") from None
  except Exception as e:  # the config file is the user's Python: any error in it is theirs
    found = re.search(r"[A-Za-z_]\w*", str(e))  # ml_collections quotes the key, maybe twice, maybe with a hint
    name = found.group() if found else ""
    if isinstance(e, AttributeError | KeyError) and any(f"config.{name}" in arg for arg in argv):
      raise UserError(f"--config.{name}: {config_names.unknown_field(name, config_fields(path))} "
                      f"(the fields: {path})") from None
    raise UserError(f"--config={path}: cannot load it ({type(e).__name__}: {first_line(e)})") from None
  if len(args) > 1:
    raise UserError(f"unexpected arguments {' '.join(args[1:])!r}; flags are written --name=value (see --helpfull)")
  return args


@exit_on_user_error
def main(argv: list[str]) -> int:
  del argv  # parse_flags refused any positional argument
  logging.set_verbosity(logging.WARNING)  # Orbax and TF log every checkpoint step at INFO
  logs.setup(FLAGS.quiet)
  from w2v_jax import trainer  # here, so that a mistake in the flags is reported before JAX and TF load

  summary = trainer.train_and_evaluate(FLAGS.config, FLAGS.workdir)
  return EXIT_STOPPED if "stopped_at_step" in summary else 0


def run(argv: list[str] | None = None) -> None:
  """Runs the command on argv (None: sys.argv) and exits with its status."""
  list_flags_in_help(__name__)
  app.run(main, argv=argv, flags_parser=parse_flags)
