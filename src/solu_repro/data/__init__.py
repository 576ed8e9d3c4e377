"""The data layer: text sources -> byte-level BPE tokenizer -> cached token shards -> batches.

Typical use::

    from solu_repro.data import DataSpec, build_dataset, RowSampler, get_rows

    corpus = build_dataset(DataSpec(vocab_size=8192))
    train = corpus.split("train")
    sampler = RowSampler(train, n_ctx=1024, seed=0)
    tokens = get_rows(train, sampler.rows_for_step(step, 32), 1024, corpus.bos_id)
"""

from __future__ import annotations


class DataError(Exception):
    """Any problem with corpus sources, data specs or the on-disk data cache."""


class CorruptDataError(DataError):
    """A cached dataset directory is incomplete or does not match its ``meta.json``."""


# The exceptions above are defined before these imports on purpose: the submodules
# import them from this package, so they must exist when the submodules load.
from solu_repro.data.batches import (  # noqa: E402
    RowSampler,
    get_rows,
    get_rows_with_sources,
    num_rows,
    row_order,
)
from solu_repro.data.build import (  # noqa: E402
    DataSpec,
    TokenizedCorpus,
    build_dataset,
    corpus_summary,
    is_validation_doc,
    open_dataset,
)
from solu_repro.data.shards import ShardWriter, TokenSplit  # noqa: E402
from solu_repro.data.sources import (  # noqa: E402
    MIXTURES,
    Document,
    Source,
    expand_source_specs,
    iter_limited,
    parse_source,
)
from solu_repro.data.tokenizer import (  # noqa: E402
    EOT_TOKEN,
    decode_tokens,
    load_tokenizer,
    train_tokenizer,
)

__all__ = [
    "CorruptDataError",
    "DataError",
    "DataSpec",
    "Document",
    "EOT_TOKEN",
    "MIXTURES",
    "RowSampler",
    "ShardWriter",
    "Source",
    "TokenSplit",
    "TokenizedCorpus",
    "build_dataset",
    "corpus_summary",
    "decode_tokens",
    "expand_source_specs",
    "get_rows",
    "get_rows_with_sources",
    "is_validation_doc",
    "iter_limited",
    "load_tokenizer",
    "num_rows",
    "open_dataset",
    "parse_source",
    "row_order",
    "train_tokenizer",
]
