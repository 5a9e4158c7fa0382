"""The command-line programs: `w2v-jax train|eval|nn|analogy` (w2v_jax.cli), and the repo's train.py and eval.py."""

import sys

from absl import flags


def list_flags_in_help(module_name: str) -> None:
  """Makes --help list the command module's flags: absl lists those of the main program (sys.argv[0])."""
  for flag in flags.FLAGS.get_key_flags_for_module(module_name):
    flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)
