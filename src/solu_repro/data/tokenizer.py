"""Byte-level BPE tokenizer, trained with Hugging Face ``tokenizers``.

Byte-level means every string is encodable (no unknown token) and ``decode(encode(t))
== t`` exactly. The single special token ``<|endoftext|>`` has id 0 and plays two
roles: it separates documents in the token stream and it is the BOS token that the
training rows start with (as in GPT-2 style models and the SoLU paper's setup).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from solu_repro.data import DataError

EOT_TOKEN = "<|endoftext|>"
EOT_ID = 0
# 256 single-byte tokens plus the special token: the smallest vocabulary that can
# represent every string.
MIN_VOCAB_SIZE = 256 + 1


def train_tokenizer(
    texts: Iterable[str],
    vocab_size: int,
    length: int | None = None,
    progress: bool = False,
) -> Tokenizer:
    """Train a byte-level BPE tokenizer.

    Args:
        texts: Training texts (the training split only, so validation stays unseen).
        vocab_size: Target vocabulary size including the special token; the result
            can be smaller if the corpus has too few distinct merges.
        length: Number of texts, only used for the progress bar.
        progress: Show the ``tokenizers`` progress bar.

    Returns:
        The trained tokenizer, with ``<|endoftext|>`` as id 0.

    Raises:
        DataError: If ``vocab_size`` is too small to hold all bytes.
    """
    if vocab_size < MIN_VOCAB_SIZE:
        raise DataError(
            f"vocab_size {vocab_size} is too small: a byte-level tokenizer needs at least "
            f"{MIN_VOCAB_SIZE} (256 bytes + {EOT_TOKEN})"
        )
    tokenizer = Tokenizer(models.BPE())
    # add_prefix_space=False keeps decode(encode(text)) == text exactly.
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOT_TOKEN],  # first special token -> id 0
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=progress,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer, length=length)
    _check_eot(tokenizer, "freshly trained tokenizer")
    return tokenizer


def save_tokenizer(tokenizer: Tokenizer, path: str | os.PathLike) -> None:
    """Write ``tokenizer`` as a ``tokenizer.json`` file.

    Args:
        tokenizer: The tokenizer to save.
        path: Destination file.
    """
    tokenizer.save(str(path))


def load_tokenizer(path: str | os.PathLike, eot_id: int | None = EOT_ID) -> Tokenizer:
    """Load a tokenizer saved by this module (or, with ``eot_id=None``, any byte-level
    ``tokenizer.json``, such as a released model's own).

    Args:
        path: A ``tokenizer.json`` file, or a dataset directory containing one.
        eot_id: The id ``<|endoftext|>`` must have (ours: 0); ``None``: it must exist at any id
            (``eot_id_of``).

    Returns:
        The tokenizer.

    Raises:
        DataError: If the file is missing/unreadable or lacks ``<|endoftext|>`` (at ``eot_id``).
    """
    path = Path(path)
    if path.is_dir():
        path = path / "tokenizer.json"
    if not path.is_file():
        raise DataError(f"tokenizer file {path} not found; build the dataset first")
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as exc:  # tokenizers raises a bare Exception on bad JSON
        raise DataError(f"cannot read tokenizer {path}: {exc}") from exc
    if eot_id is None:
        eot_id_of(tokenizer, str(path))
    else:
        _check_eot(tokenizer, str(path), eot_id)
    # Encode a literal "<|endoftext|>" in text as ordinary bytes, exactly as the shards were
    # built (the flag is not stored in tokenizer.json); EOT/BOS ids are inserted explicitly.
    tokenizer.encode_special_tokens = True
    return tokenizer


def _check_eot(tokenizer: Tokenizer, what: str, eot_id: int = EOT_ID) -> None:
    if tokenizer.token_to_id(EOT_TOKEN) != eot_id:
        raise DataError(f"{what}: expected {EOT_TOKEN} to have id {eot_id}")


def eot_id_of(tokenizer: Tokenizer, what: str = "tokenizer") -> int:
    """The id of ``<|endoftext|>`` in a tokenizer that is not ours (GPT-NeoX's: 0). A corpus
    needs it between documents and as the BOS of every row."""
    eot = tokenizer.token_to_id(EOT_TOKEN)
    if eot is None:
        raise DataError(f"{what} has no {EOT_TOKEN} token: a corpus needs it between documents "
                        "and at the start of every row; use a tokenizer that has one (GPT-2 and "
                        "GPT-NeoX style byte-level BPE)")
    return int(eot)


@lru_cache(maxsize=1)
def _unicode_to_byte() -> dict[str, int]:
    """Invert the byte -> printable-character table that byte-level BPE uses.

    Bytes that are already printable (and not space) stand for themselves; the
    remaining bytes are assigned the code points 256, 257, ... in byte order. This is
    how ``ByteLevel`` makes every byte visible in the vocabulary.
    """
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("\xa1"), ord("\xac") + 1),
        *range(ord("\xae"), ord("\xff") + 1),
    ]
    mapping = {chr(b): b for b in printable}
    next_code_point = 256
    for b in range(256):
        if b not in printable:
            mapping[chr(next_code_point)] = b
            next_code_point += 1
    return mapping


def token_bytes(tokenizer: Tokenizer, token_id: int) -> bytes:
    """Return the raw bytes a (non-special) token stands for.

    Args:
        tokenizer: A byte-level tokenizer from this module.
        token_id: The token id.

    Returns:
        The token's bytes; special tokens return their UTF-8 spelling.

    Raises:
        DataError: If ``token_id`` is outside the vocabulary.
    """
    token = tokenizer.id_to_token(int(token_id))
    if token is None:
        raise DataError(
            f"token id {token_id} is outside the vocabulary (size {tokenizer.get_vocab_size()})"
        )
    if token == EOT_TOKEN:
        return token.encode("utf-8")
    table = _unicode_to_byte()
    try:
        return bytes(table[ch] for ch in token)
    except KeyError:
        # Not a byte-level string: an added token of another tokenizer, stored as its own text
        # (GPT-NeoX's runs of spaces, "<|padding|>").
        return token.encode("utf-8")


def decode_tokens(tokenizer: Tokenizer, ids: Sequence[int]) -> list[str]:
    """Give each token's own text, for displaying tokens one by one (neuron viewers).

    A token that is only part of a multi-byte UTF-8 character cannot be shown on its
    own; it is displayed as its escaped bytes (e.g. ``"\\xe2\\x80"``) rather than as a
    replacement character, so distinct tokens stay distinguishable.

    Args:
        tokenizer: A byte-level tokenizer from this module.
        ids: Token ids (any integer sequence, numpy array or tensor).

    Returns:
        One display string per token; ``<|endoftext|>`` is shown as itself.
    """
    out = []
    for token_id in ids:
        raw = token_bytes(tokenizer, int(token_id))
        try:
            out.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            out.append("".join(f"\\x{b:02x}" for b in raw))
    return out
