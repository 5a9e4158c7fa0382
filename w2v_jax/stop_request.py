"""SIGTERM and SIGINT ask the training loop to checkpoint and stop, so a preempted run loses nothing."""

from __future__ import annotations

import os
import signal
import threading

from w2v_jax.logs import LOGGER


class StopRequest:
  """SIGTERM/SIGINT ask the loop to checkpoint and stop; a second signal exits at once (exit_on_second), or raises
  KeyboardInterrupt so that an interpreter (Jupyter) survives. Handlers exist only on the main thread."""

  def __init__(self, exit_on_second: bool = True):
    self.requested = False
    self.exit_on_second = exit_on_second
    self.previous = {}
    if threading.current_thread() is threading.main_thread():  # signal.signal works only there
      self.previous = {sig: signal.signal(sig, self._handle) for sig in (signal.SIGTERM, signal.SIGINT)}

  def _handle(self, signum, frame):
    if self.requested:
      if not self.exit_on_second:
        raise KeyboardInterrupt
      LOGGER.warning("second interrupt: exiting without a checkpoint")
      os._exit(128 + signum)
    self.requested = True
    LOGGER.warning(f"{signal.Signals(signum).name}: saving a checkpoint at the current step, then stopping "
                   f"(again to {'exit' if self.exit_on_second else 'interrupt'} at once)")

  def restore(self) -> None:
    for sig, handler in self.previous.items():
      signal.signal(sig, handler)
