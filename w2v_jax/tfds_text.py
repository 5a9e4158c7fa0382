"""A TensorFlow Datasets split's text feature as a corpus: one record per line, read through corpus's pieces."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

from w2v_jax import corpus
from w2v_jax.errors import UserError, first_line

PREFIX = "tfds:"
# Records joined per tf.data batch: amortises the per-element Python cost over many sentences.
_RECORDS_PER_BATCH = 4096


@dataclasses.dataclass(frozen=True)
class TfdsText:
  """The text feature text_key of split (of this host's shard: shard = (process_count, process_index))."""

  name: str
  split: str = "train"
  text_key: str = "text"
  data_dir: str | None = None
  shard: tuple[int, int] = (1, 0)

  def __str__(self) -> str:
    return f"{PREFIX}{self.name} ({self.split}, {self.text_key!r})"

  def _builder(self):
    tfds = _tfds()
    try:
      builder = tfds.builder(self.name, data_dir=self.data_dir or None)
    except Exception as e:  # TFDS raises several types (DatasetNotFoundError, ValueError, ...) for a bad name
      raise UserError(f"corpus {PREFIX}{self.name}: not a TensorFlow Datasets name ({type(e).__name__}: "
                      f"{str(e).splitlines()[0] if str(e) else ''})") from None
    features = builder.info.features
    if self.text_key not in features:
      raise UserError(f"corpus {PREFIX}{self.name} has no feature {self.text_key!r} (it has "
                      f"{', '.join(sorted(features.keys()))}); set --config.tfds_text_key")
    return builder

  def _records(self) -> Iterator[bytes]:
    """The split's texts, newline-joined in batches, in the dataset's fixed order."""
    tfds = _tfds()
    builder = self._builder()
    count, index = self.shard
    split = tfds.even_splits(self.split, n=count)[index] if count > 1 else self.split
    try:
      builder.download_and_prepare()
      ds = builder.as_dataset(split=split, shuffle_files=False)
    except (ValueError, KeyError) as e:
      raise UserError(f"corpus {PREFIX}{self.name}: cannot read split {self.split!r} ({e}); "
                      "set --config.tfds_split") from None
    except (tfds.download.DownloadError, OSError) as e:  # offline, a blocked URL, a full disk under data_dir
      raise UserError(f"corpus {PREFIX}{self.name}: cannot download or prepare it ({first_line(e, 200)}); prepare it "
                      "where there is network (`tfds build NAME --data_dir=DIR`) and pass --config.tfds_data_dir=DIR"
                      ) from None
    except ImportError as e:  # a package only this dataset's preparation needs (e.g. apache_beam for wiki40b)
      missing = e.name or str(e)
      raise UserError(f"corpus {PREFIX}{self.name}: preparing it needs the Python package {missing}: "
                      f"pip install {missing}") from None
    ds = ds.map(lambda example: example[self.text_key]).batch(_RECORDS_PER_BATCH)
    for texts in ds.as_numpy_iterator():
      yield b"\n".join(texts) + b"\n"

  def pieces(self, lowercase: bool, stats: corpus.ReadStats | None = None, piece_bytes: int = corpus.PIECE_BYTES,
             share: tuple[int, int] = (1, 0)) -> Iterator[bytes]:
    """The records as corpus pieces (see corpus.TextSource.pieces): each record is a sentence, so a SEP follows it."""
    return corpus.chunks_to_pieces(_grouped(self._records(), piece_bytes), lowercase, stats, share)

  def identity(self) -> list:
    """Dataset, version, split and feature: what decides the whole corpus's text (not where it is stored,
    nor which host reads which share of it)."""
    version = str(self._builder().info.version)
    return [[f"{PREFIX}{self.name}", version, self.split, self.text_key]]

  def host_share(self, hosts: int, index: int) -> TfdsText:
    """Host index's contiguous share of the whole split (tfds.even_splits; it replaces any shard of self)."""
    return dataclasses.replace(self, shard=(hosts, index))

  def check_text(self) -> None:
    """Nothing to check: the records are a dataset's text feature, strings by its schema, not a file's bytes."""

  def counting_processes(self, requested: int) -> int:
    """One: each counting process would read (download, decode) the whole split to count its share."""
    return 1


def _tfds():
  """tensorflow_datasets, which only TFDS corpora need."""
  try:
    import tensorflow_datasets as tfds
  except ImportError:
    raise UserError(f"a {PREFIX} corpus needs tensorflow-datasets: pip install tensorflow-datasets") from None
  return tfds


def _grouped(chunks: Iterator[bytes], min_bytes: int) -> Iterator[bytes]:
  """Joins small chunks into ones of at least min_bytes, so pieces are about as large as from files."""
  group, size = [], 0
  for chunk in chunks:
    group.append(chunk)
    size += len(chunk)
    if size >= min_bytes:
      yield b"".join(group)
      group, size = [], 0
  if group:
    yield b"".join(group)


def parse(spec: str, split: str, text_key: str, data_dir: str | None, shard: tuple[int, int] = (1, 0)) -> TfdsText:
  """A 'tfds:NAME[/CONFIG][:VERSION]' corpus spec with the config's split, feature and data_dir."""
  return TfdsText(spec[len(PREFIX):], split, text_key, data_dir or None, shard)
