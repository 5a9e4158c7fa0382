"""Training progress: a line through the logger, the same metrics as TensorBoard events, and the run's config."""

from __future__ import annotations

import threading
import time

import ml_collections
import numpy as np

from w2v_jax.errors import UserError
from w2v_jax.logs import LOGGER


def _quiet_event_writer_errors(args: threading.ExceptHookArgs) -> None:
  """Drops the OSError (a full disk) that kills tensorboardX's writer thread: Progress.close reports it in one
  line. Anything else goes to the default hook."""
  if type(args.thread).__name__ == "_EventLoggerThread" and issubclass(args.exc_type, OSError):
    return
  threading.__excepthook__(args)


class Progress:
  """Progress lines through the logger every log_every_steps, the same metrics as TensorBoard events every
  tensorboard_every_steps, and the run's config as TensorBoard text."""

  def __init__(self, logdir: str, config: ml_collections.ConfigDict, total_words: int, start_words: int):
    from tensorboardX import SummaryWriter

    self.writer = SummaryWriter(logdir)
    threading.excepthook = _quiet_event_writer_errors
    self.writer.add_text("config", "```\n" + config.to_json(indent=2) + "\n```", 0)
    self.total_words = total_words
    self.begin(start_words)  # the words trained before a resume do not count toward words/s and the ETA

  def begin(self, words: int) -> None:
    """Starts the clock for words/s and the ETA at words (after the first step, which waits for the compile)."""
    self.start, self.start_words = time.time(), words
    self.last = {"console": (self.start, words), "tensorboard": (self.start, words)}  # per output: time, words

  def _rate(self, output: str, now: float, words: int) -> float:
    last_time, last_words = self.last[output]
    self.last[output] = now, words
    return (words - last_words) / max(now - last_time, 1e-9)

  def report(self, step: int, epoch: int, epochs: int, words: int, loss: float, lr: float, console: bool = True,
             tensorboard: bool = True) -> None:
    """A progress line (console) and the train/ scalars (tensorboard); loss is the mean since the last report."""
    now, done = time.time(), words / self.total_words
    if tensorboard:
      rate = self._rate("tensorboard", now, words)
      for name, value in (("loss", loss), ("learning_rate", lr), ("words_per_sec", rate), ("progress", done)):
        self.writer.add_scalar(f"train/{name}", value, step)
    if console:
      rate = self._rate("console", now, words)
      eta = (now - self.start) / max(words - self.start_words, 1) * (self.total_words - words)
      LOGGER.info(f"epoch {epoch + 1}/{epochs}  {100 * done:5.1f}%  {rate / 1e3:7.1f}k words/s  loss {loss:.4f}  "
                  f"lr {lr:.5f}  ETA {int(eta) // 60}m{int(eta) % 60:02d}s")

  def scalars(self, prefix: str, values: dict[str, float], step: int) -> None:
    for name, value in values.items():
      if np.isfinite(value):  # a benchmark with no known word scores NaN
        self.writer.add_scalar(f"{prefix}/{name}", value, step)
    self.writer.flush()

  def close(self) -> None:
    """Flushes the events; a failed write (a full disk) is one line, as for the other outputs."""
    try:
      self.writer.close()
    except OSError as e:
      event_writer = self.writer.file_writer.event_writer
      event_writer._closed = True  # so tensorboardX's exit hook does not retry and print
      event_writer._worker.stop()  # its thread ends (its own write errors are dropped, see above)
      raise UserError(f"cannot write TensorBoard events in {self.writer.logdir} ({e.strerror or e}); "
                      "free space and run the same command to resume") from None
