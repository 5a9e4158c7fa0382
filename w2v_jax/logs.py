"""The package's messages and progress go through the `w2v_jax` logger, shown on stdout as plain lines by default."""

from __future__ import annotations

import logging
import sys

LOGGER = logging.getLogger("w2v_jax")


class _Stdout(logging.StreamHandler):
  """A handler writing to whatever sys.stdout is at each message (a notebook's or pytest's capture swaps it)."""

  @property
  def stream(self):
    return sys.stdout

  @stream.setter
  def stream(self, value) -> None:
    del value  # StreamHandler.__init__ sets it; the property always answers sys.stdout


def setup(quiet: bool = False) -> None:
  """Shows the package's INFO messages (with quiet only warnings and errors) on stdout, without a prefix; a handler
  the user attached to the `w2v_jax` logger (or propagation to the root logger they configured) is kept instead."""
  if not LOGGER.handlers:
    handler = _Stdout()
    handler.setFormatter(logging.Formatter("%(message)s"))
    LOGGER.addHandler(handler)
    LOGGER.propagate = False  # absl's root handler would print each line again with its own prefix
  LOGGER.setLevel(logging.WARNING if quiet else logging.INFO)
