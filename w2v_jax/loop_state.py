"""Where training stands: one small record that is the checkpoint's metadata, and the learning rate it implies."""

from __future__ import annotations

import dataclasses

import ml_collections
import optax

from w2v_jax.settings import resolve_alpha


@dataclasses.dataclass
class LoopState:
  """The loop's position: saved with every checkpoint, restored from it, advanced by every step."""

  step: int = 0
  epoch: int = 0  # epochs finished
  words: int = 0  # corpus tokens of the current epoch read so far, by all hosts
  positions: list = dataclasses.field(default_factory=list)  # every process's [stream index, word position]
  anchor: tuple[float, float] = (0, 0.0)  # (words, lr) the linear learning-rate schedule starts from

  def words_read(self, epoch_tokens: int) -> int:
    """Corpus tokens read since training began, over all epochs (the learning rate's clock)."""
    return self.epoch * epoch_tokens + self.words

  def next_epoch(self) -> None:
    self.epoch, self.words, self.positions = self.epoch + 1, 0, []

  def meta(self, identity: dict) -> dict:
    """The checkpoint metadata (the Checkpointer adds the step and the tables' checksum), with the run's identity."""
    return {"epoch": self.epoch, "words": self.words, "positions": self.positions, "anchor": list(self.anchor),
            "identity": identity}


def start(config: ml_collections.ConfigDict) -> LoopState:
  """A fresh run: step 0, the schedule anchored at alpha."""
  return LoopState(anchor=(0, resolve_alpha(config)))


def resumed(meta: dict, config: ml_collections.ConfigDict, epoch_tokens: int) -> LoopState:
  """The state a checkpoint saved; when config.epochs changed, the schedule is re-anchored so the rate never jumps:
  a finished run given more epochs decays from alpha again, a run changed mid-way from its current rate."""
  state = LoopState(meta["step"], meta["epoch"], meta["words"], meta["positions"], tuple(meta["anchor"]))
  saved_epochs, words = meta["identity"]["epochs"], state.words_read(epoch_tokens)
  if saved_epochs != config.epochs and state.epoch >= saved_epochs:
    state.anchor = (words, resolve_alpha(config))
  elif saved_epochs != config.epochs:
    state.anchor = (words, float(lr_schedule(state.anchor, saved_epochs * epoch_tokens, config.min_alpha)(words)))
  return state


def lr_schedule(anchor: tuple[float, float], total_words: int, min_alpha: float) -> optax.Schedule:
  """The learning rate against corpus tokens read: linear from the anchor (words, lr) down to min_alpha at
  total_words, then flat. Its counts are floats, so that runs past 2**31 words do not overflow int32."""
  anchor_words, anchor_lr = anchor
  return optax.linear_schedule(anchor_lr, min_alpha, float(max(total_words - anchor_words, 1)), float(anchor_words))
