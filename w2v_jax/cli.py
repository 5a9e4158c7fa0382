"""The `w2v-jax` command: w2v-jax train|eval|nn|analogy [flags] (w2v-jax COMMAND --help for a command's flags)."""

from __future__ import annotations

import os
import sys

USAGE = """usage: w2v-jax COMMAND [flags]

  train     train vectors:    w2v-jax train --workdir runs/x [--config configs/default.py] [--config.dim=300]
  eval      score vectors:    w2v-jax eval --workdir runs/x (or --vectors FILE) [--analogy FILE] [--similarity FILE]
  nn        nearest words:    w2v-jax nn --workdir runs/x WORD...
  analogy   A is to B as C:   w2v-jax analogy --workdir runs/x A B C

w2v-jax COMMAND --help lists a command's flags (--helpfull: with JAX's and absl's)."""
COMMANDS = ("train", "eval", "nn", "analogy")


def main(argv: list[str] | None = None) -> None:
  """Runs the command argv[1] names on the rest of argv (None: sys.argv); exits with its status."""
  argv = sys.argv if argv is None else argv
  if len(argv) < 2 or argv[1] in ("-h", "--help", "help"):
    print(USAGE)
    sys.exit(0 if len(argv) >= 2 else 2)
  command, program = argv[1], f"{os.path.basename(argv[0])} {argv[1]}"
  if command not in COMMANDS:
    print(f"error: unknown command {command!r}; the commands are {', '.join(COMMANDS)} (see w2v-jax --help)",
          file=sys.stderr)
    sys.exit(2)
  # Each command's module defines its own absl flags (train and eval both have --workdir): import only one.
  if command == "train":
    from w2v_jax.commands import train as module
  else:
    from w2v_jax.commands import evaluate as module
  sys.modules["__main__"].__doc__ = module.__doc__  # what absl's --help prints
  if command == "train":
    module.run([program, *argv[2:]])
  else:
    module.run([program, *argv[2:]], command)


if __name__ == "__main__":
  main()
