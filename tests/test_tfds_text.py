"""tfds_text: a TFDS split's text feature as a corpus (mocked with tfds.testing.mock_data, never downloaded)."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

from w2v_jax import input_pipeline, prepare, tfds_text
from w2v_jax.errors import UserError
from w2v_jax.vocab import build_vocab

pytestmark = pytest.mark.needs_tf

TEXTS = [b"The cat sat", b"the dog ran\nfar away", b"a cat", b"the end"]


@contextlib.contextmanager
def mock_lm1b(texts: list[bytes] = TEXTS):
  """lm1b's real builder and features, with as_dataset mocked to yield texts; yields the splits asked for."""
  import tensorflow as tf
  import tensorflow_datasets as tfds

  splits: list[str] = []

  def as_dataset(self, split, decoders=None, read_config=None, **kwargs):
    splits.append(str(split))
    return tf.data.Dataset.from_tensor_slices({"text": texts})

  with tfds.testing.mock_data(as_dataset_fn=as_dataset):
    yield splits


def test_records_are_sentences() -> None:
  """Each record ends a line (SEP after it, also inside a record at a newline); lowercasing applies."""
  with mock_lm1b():
    source = tfds_text.TfdsText("lm1b")
    vocab = build_vocab(source, lowercase=True, min_count=1)
    ids = input_pipeline.tokenize(source, vocab, lowercase=True)
  assert vocab.words[:2] == ["the", "cat"] and vocab.counts[:2].tolist() == [3, 2]
  assert vocab.total_tokens == 12
  words = [vocab.words[i] if i >= 0 else "|" for i in ids.tolist()]
  assert " ".join(words) == "the cat sat | the dog ran | far away | a cat | the end |"


def test_shard_reads_an_even_split() -> None:
  """shard=(count, index) reads tfds.even_splits(split, count)[index]; the identity is the whole split's (the
  same on every host, so the vocabulary is reused whatever the number of hosts)."""
  with mock_lm1b() as splits:
    list(tfds_text.TfdsText("lm1b").host_share(4, 2).pieces(False))
    identity = tfds_text.TfdsText("lm1b", shard=(4, 2)).identity()
    whole = tfds_text.TfdsText("lm1b").identity()
  assert "index=2" in splits[0] and "count=4" in splits[0]
  assert identity == [["tfds:lm1b", "1.1.0", "train", "text"]] == whole


@pytest.mark.parametrize("name, key, message", [("nosuchdataset", "text", "not a TensorFlow Datasets name"),
                                                ("lm1b", "body", "no feature 'body'.*tfds_text_key")])
def test_user_errors(name: str, key: str, message: str) -> None:
  """An unknown dataset or a missing text feature is one line naming the fix."""
  with mock_lm1b(), pytest.raises(UserError, match=message) as info:
    list(tfds_text.TfdsText(name, text_key=key).pieces(False))
  assert "\n" not in str(info.value)


def test_prepare_reuses_the_tfds_cache(tmp_path, capsys) -> None:
  """config.corpus='tfds:lm1b' is read once (counting spills the token hashes that become the cache); a second run
  reuses the vocabulary and cache without reading the data."""
  from configs import tiny

  config = tiny.get_config()
  config.corpus = "tfds:lm1b"
  with mock_lm1b() as splits:
    vocab, stream = prepare.load_vocab_and_tokens(config, str(tmp_path))
    reads = len(splits)
    again, cached = prepare.load_vocab_and_tokens(config, str(tmp_path))
  assert reads == 1 and len(splits) == reads  # one pass: count and spill, then nothing
  assert "skipping the counting pass" in capsys.readouterr().out
  assert again.words == vocab.words
  np.testing.assert_array_equal(np.asarray(cached), np.asarray(stream))
  assert len(stream) == 12 + 5


def test_preparing_a_dataset_finds_its_imports() -> None:
  """TFDS's prepare path imports importlib_resources (an undeclared dependency of tensorflow-datasets, so
  pyproject.toml lists it): lm1b's builder finds its code without raising ModuleNotFoundError. Nothing is
  downloaded."""
  import tensorflow_datasets as tfds

  assert tfds.builder_cls("lm1b").code_path.name == "lm1b_dataset_builder.py"


def test_a_missing_preparation_package_is_one_line() -> None:
  """A package only a dataset's preparation needs (e.g. apache_beam for wiki40b) missing: one line naming it."""
  from unittest import mock

  import tensorflow_datasets as tfds

  missing = ModuleNotFoundError("No module named 'apache_beam'", name="apache_beam")
  with mock_lm1b(), mock.patch.object(tfds.core.DatasetBuilder, "download_and_prepare", side_effect=missing):
    with pytest.raises(UserError, match="needs the Python package apache_beam: pip install apache_beam") as info:
      list(tfds_text.TfdsText("lm1b").pieces(False))
  assert "\n" not in str(info.value)


def test_a_failed_download_is_one_line() -> None:
  """Preparing offline (TFDS's DownloadError) is one line saying where to prepare it, not a traceback."""
  from unittest import mock

  import tensorflow_datasets as tfds

  failed = tfds.download.DownloadError("Failed to get url https://example.org/lm1b.tar.gz.\nHTTP code: 403.")
  with mock_lm1b(), mock.patch.object(tfds.core.DatasetBuilder, "download_and_prepare", side_effect=failed):
    with pytest.raises(UserError, match="cannot download or prepare it .Failed to get url.*tfds_data_dir") as info:
      list(tfds_text.TfdsText("lm1b").pieces(False))
  assert "\n" not in str(info.value)
