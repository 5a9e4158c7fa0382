"""Progress: the console line, TensorBoard's scalars and config text, and a full disk while closing."""

import pytest

from configs import tiny
from w2v_jax.progress import Progress


def test_progress_eta_counts_only_the_words_trained_since_a_resume(tmp_path, capsys):
  """After a resume the ETA and words/s count the words trained by this process only."""
  progress = Progress(str(tmp_path / "tensorboard"), tiny.get_config(), total_words=1000, start_words=500)
  progress.begin(500)
  progress.start -= 10  # 100 words in 10 s since the first step after the resume, 400 to go
  progress.last["console"] = (progress.start, 500)
  progress.report(step=1, epoch=0, epochs=1, words=600, loss=1.0, lr=0.01)
  progress.close()
  line = capsys.readouterr().out
  assert "ETA 0m40s" in line and " 60.0%" in line
  assert "0.0k words/s" in line  # 100 words in 10 s, not 600 words


def test_progress_console_and_tensorboard_report_separately_and_tensorboard_gets_the_config(tmp_path, capsys):
  """A report for TensorBoard only writes the train/ scalars and no line; one for the console only, a line and
  no scalar; the config is a TensorBoard text."""
  import tensorflow as tf

  progress = Progress(str(tmp_path / "tensorboard"), tiny.get_config(), total_words=1000, start_words=0)
  progress.report(step=5, epoch=0, epochs=1, words=100, loss=1.0, lr=0.01, console=False, tensorboard=True)
  assert capsys.readouterr().out == ""
  progress.report(step=20, epoch=0, epochs=1, words=400, loss=0.5, lr=0.01, console=True, tensorboard=False)
  assert "loss 0.5000" in capsys.readouterr().out
  progress.close()
  [path] = (tmp_path / "tensorboard").glob("events.out.tfevents*")
  values = [(event.step, value) for event in tf.compat.v1.train.summary_iterator(str(path))
            for value in event.summary.value]
  assert [step for step, value in values if value.tag == "train/loss"] == [5]
  [text] = [value.tensor.string_val[0].decode() for _, value in values if value.tag.startswith("config")]
  assert '"dim": 16' in text


def test_progress_close_on_a_full_disk_is_one_line(tmp_path, monkeypatch):
  """TensorBoard events that cannot be flushed (ENOSPC) are a UserError, and tensorboardX's exit hook stays quiet."""
  import errno

  from w2v_jax.errors import UserError
  progress = Progress(str(tmp_path / "tensorboard"), tiny.get_config(), total_words=10, start_words=0)
  progress.writer.add_scalar("x", 1.0, 0)
  event_writer = progress.writer.file_writer.event_writer

  def full(*args):
    raise OSError(errno.ENOSPC, "No space left on device")

  monkeypatch.setattr(event_writer, "flush", full)
  with pytest.raises(UserError, match="cannot write TensorBoard events in .*No space left on device"):
    progress.close()
  assert event_writer._closed  # the atexit cleanup would otherwise flush again and print a traceback
