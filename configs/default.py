"""Default config: skip-gram on the small corpus bundled with the package (a few minutes on 2 CPU cores)."""

import ml_collections
from ml_collections import config_dict

from w2v_jax import corpus


def get_config() -> ml_collections.ConfigDict:
  """Returns the default hyperparameters; names follow gensim/word2vec.c."""
  config = ml_collections.ConfigDict()
  # Corpus: text files (plain, .gz, .bz2, .xz, or .zip with one text member) as a file, directory, glob or
  # comma-separated list of these; or 'tfds:NAME' (e.g. tfds:lm1b, tfds:wiki40b/en) for a TensorFlow Datasets split.
  config.corpus = corpus.BUNDLED_CORPUS
  # Read a corpus file that is plainly not UTF-8 text (over 1% of its first MiB NUL or invalid UTF-8) anyway.
  config.allow_binary_corpus = False
  # TFDS corpus: the split to read (any TFDS split string, e.g. 'train[:10%]').
  config.tfds_split = "train"
  # TFDS corpus: the text feature; each record is one sentence (a SEP follows it).
  config.tfds_text_key = "text"
  # TFDS corpus: where the prepared dataset lives (empty: TFDS's default, ~/tensorflow_datasets).
  config.tfds_data_dir = ""
  # Lowercase the text before counting and training (the bundled corpus is already lowercase).
  config.lowercase = True
  # 'skipgram' or 'cbow'.
  config.model = "skipgram"
  # Embedding dimension (gensim's vector_size).
  config.dim = 100
  # Maximum distance between a center word and a context word.
  config.window = 5
  # Draw the effective window uniformly in 1..window per center word (gensim's shrink_windows).
  config.shrink_windows = True
  # Number of negative samples per positive pair.
  config.negative = 5
  # Negatives drawn per group of center words and shared by all their pairs (0: `negative`), each
  # weighted negative / negative_draws; many low-weight draws keep the update's variance near
  # word2vec.c's per-pair negatives (5 per group of 1 loses 0.08 analogy accuracy, BENCHMARKS.md).
  config.negative_draws = 64
  # Consecutive center words sharing one draw of negatives (HogBatch): a group's rows are gathered
  # once and scored in one matrix product, so 64 draws per 32 centers gather 2 rows per center (groups
  # of 16 to 64 scored alike after 5 epochs, 128 lower: BENCHMARKS.md, session 4).
  config.negative_group = 32
  # Negatives are drawn from count**ns_exponent (0.75 as word2vec.c; fastText uses 0.5).
  config.ns_exponent = 0.75
  # Frequent-word subsampling threshold (word2vec.c formula); 0 turns it off.
  config.sample = 1e-3
  # Words seen fewer times than this are dropped from the vocabulary.
  config.min_count = 5
  # Cap on the vocabulary (and on counting memory, pruning like word2vec.c); 0 means no cap.
  config.max_vocab_size = 0
  # Processes counting the vocabulary of file corpora (each reads all files, counts its share of pieces);
  # 1 on a busy 2-core machine, where a second process measured slower (BENCHMARKS.md).
  config.vocab_processes = 1
  # Passes over the corpus.
  config.epochs = 5
  # Initial learning rate; unset means 0.025 for skipgram and 0.05 for cbow.
  config.alpha = config_dict.placeholder(float)
  # Final learning rate, reached linearly at the end of the last epoch.
  config.min_alpha = 1e-4
  # CBOW: average the context vectors (True) or sum them (False).
  config.cbow_mean = True
  # Tokens per training step (global, over all devices and processes); a multiple of block_length. Each
  # curvature shape (two D x D eigendecompositions) serves curvature_every tokens of it.
  config.batch_size = 65536
  # Row-wise implicit step, so that many tokens can update at once: a row's summed update is divided, along
  # each eigendirection of its curvature a * S (a: sum of s'(score) over its pairs; S: the shared second moment
  # of the partners, see curvature_words), by 1 + damping * lr * a * eigenvalue (docs/ALGORITHM.md).
  # Rare rows get plain SGD, frequent ones about half a Newton step for each of the two tables (2: the pair
  # then moves one Newton step together); 0 is plain summed SGD, which diverges at large updates.
  config.damping = 2.0
  # Curvature directions damped one by one (the largest); the rest by the largest of them (0 or >= dim: all).
  config.curvature_rank = 16
  # The most frequent words whose rows estimate the shape of the curvature (their partners' second moment),
  # every curvature_every tokens; they are most of any row's partners.
  config.curvature_words = 4096
  # Tokens between estimates of the curvature shape, in whole updates (at least one update, at most a step;
  # 0: once per step): the shape is a statistic of the tables, and large updates each need a fresh one.
  config.curvature_every = 65536
  # Tokens per synchronous update, applied one after another inside a step (0: the whole batch), rounded up
  # to a block per device. Quality holds from 256 to 262,144 (BENCHMARKS.md); on a CPU 1,024 is the fastest
  # (the damped update's per-update work against XLA's per-op cost).
  config.update_size = 1024
  # Tokens per block: windows never cross a block edge (~1% of pairs lost at 256; word2vec.c cuts
  # sentences at 1000 words).
  config.block_length = 256
  # Epoch input: 'tfdata' (tf.data pipeline) or 'numpy' (no TensorFlow needed), from the token cache.
  config.input = "tfdata"
  # Devices of the 1-D data mesh (0: all visible devices, on every host).
  config.num_devices = 0
  # Tables on several devices: 'replicated' (each device holds both; only the update's entries are exchanged)
  # or 'sharded' along the vocabulary (for vocabularies too large for one device).
  config.table_layout = "replicated"
  # Several hosts: process 0's host:port for jax.distributed ('auto': detect TPU pod/SLURM; '': one process).
  config.coordinator_address = ""
  # Number of processes taking part (with a coordinator_address; 0 with 'auto': detected).
  config.num_processes = 0
  # This process's index in 0..num_processes-1 (-1 with 'auto': detected).
  config.process_id = -1
  # Seconds to wait for every process to join through the coordinator before giving up with one error line.
  config.coordinator_timeout_secs = 300
  # Seed for initialisation, window shrink, subsampling and negatives.
  config.seed = 0
  # Save a checkpoint every this many steps (0: not by steps); one is also saved after every epoch.
  config.checkpoint_every_steps = 0
  # Save a checkpoint every this many seconds (0: not by time); saves are asynchronous.
  config.checkpoint_every_secs = 300.0
  # How many of the latest checkpoints to keep.
  config.keep_checkpoints = 3
  # Start over, deleting this workdir's checkpoints, instead of resuming from the latest one.
  config.restart = False
  # Log a progress line (words/s, loss, lr, ETA) every this many steps; processes agree on stopping at these steps.
  config.log_every_steps = 20
  # Write the training metrics to TensorBoard every this many steps.
  config.tensorboard_every_steps = 5
  # Run the bundled similarity/analogy evaluation at the end of every epoch.
  config.eval_every_epoch = True
  # Nearest neighbours of these words are printed at the end of training.
  config.probe_words = "king,france,computer,two,music"
  return config
