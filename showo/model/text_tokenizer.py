"""Text tokenizer: any ``tokenizers`` BPE (phi-1.5's ``tokenizer.json`` or one we train),
with Show-o's special tokens appended right after its vocabulary."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers

from .checkpoint_io import atomic_write, read_json
from .hub import TOKENIZER_FILES, resolve_folder
from .layout import SPECIAL_TOKENS, TokenLayout

DEFAULT_BOS_EOS = "<|endoftext|>"


class TextTokenizer:
    def __init__(self, tokenizer: Tokenizer, bos_token: str = DEFAULT_BOS_EOS, eos_token: str = DEFAULT_BOS_EOS):
        self.tokenizer = tokenizer
        self.bos_token, self.eos_token = bos_token, eos_token
        self.bos_id = self._require_id(bos_token, "bos_token")
        self.eos_id = self._require_id(eos_token, "eos_token")
        self.text_vocab_size = self._append_special_tokens()

    def _require_id(self, token: str, role: str) -> int:
        token_id = self.tokenizer.token_to_id(token)
        if token_id is None:
            raise ValueError(f"the tokenizer has no {role} {token!r}")
        return token_id

    def _append_special_tokens(self) -> int:
        """Add Show-o's special tokens (if not already there); return the text vocabulary size."""
        pad_id = self.tokenizer.token_to_id(SPECIAL_TOKENS[0])
        base = pad_id if pad_id is not None else self.tokenizer.get_vocab_size(with_added_tokens=True)
        if pad_id is None:
            self.tokenizer.add_special_tokens([AddedToken(t, special=True) for t in SPECIAL_TOKENS])
        got = [self.tokenizer.token_to_id(t) for t in SPECIAL_TOKENS]
        expected = list(range(base, base + len(SPECIAL_TOKENS)))
        if got != expected:
            raise ValueError(
                f"special tokens {SPECIAL_TOKENS} must take ids {expected} right after the text "
                f"vocabulary, but they took {got}"
            )
        return base

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def from_folder(
        cls,
        path: str | Path,
        *,
        revision: str | None = None,
        cache_dir: str | Path | None = None,
        local_files_only: bool = False,
        token: str | bool | None = None,
    ) -> TextTokenizer:
        """Load ``tokenizer.json`` (and BOS/EOS from ``tokenizer_config.json`` if present).

        ``path``: a folder, a ``tokenizer.json`` file, or a Hugging Face Hub id
        (``"microsoft/phi-1_5"`` for the released Show-o) resolved through the Hugging Face cache
        (``showo.model.hub.resolve_folder``; a local folder of that name wins; only the two
        tokenizer files are fetched). ``revision`` (branch, tag or commit hash), ``cache_dir``
        (default ``HF_HUB_CACHE``), ``local_files_only`` (no download; ``HF_HUB_OFFLINE=1`` does the
        same) and ``token`` apply to Hub ids."""
        folder = resolve_folder(path, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only,
                                token=token, allow_patterns=TOKENIZER_FILES)
        file = folder / "tokenizer.json" if folder.is_dir() else folder
        if not file.is_file():
            raise FileNotFoundError(f"{file}: no tokenizer.json found")
        try:
            tokenizer = Tokenizer.from_file(str(file))
        except Exception as e:  # tokenizers raises a bare Exception for malformed files
            raise ValueError(f"{file}: not a valid tokenizers file ({e})") from e
        bos, eos = _bos_eos_from_config(file.parent / "tokenizer_config.json")
        return cls(tokenizer, bos, eos)

    @classmethod
    def train_bpe(cls, texts: Iterable[str], vocab_size: int = 512, min_frequency: int = 2) -> TextTokenizer:
        """Train a byte-level BPE (GPT-2 style, like phi-1.5's) on a corpus of strings."""
        tokenizer = Tokenizer(models.BPE())
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=[DEFAULT_BOS_EOS],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        tokenizer.train_from_iterator(texts, trainer=trainer)
        return cls(tokenizer)

    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        atomic_write(folder / "tokenizer.json", lambda tmp: self.tokenizer.save(str(tmp)))
        config = {"bos_token": self.bos_token, "eos_token": self.eos_token}
        atomic_write(folder / "tokenizer_config.json", lambda tmp: tmp.write_text(json.dumps(config, indent=2)))

    # -- use ---------------------------------------------------------------------------------
    def layout(self, codebook_size: int) -> TokenLayout:
        return TokenLayout(self.text_vocab_size, codebook_size, self.bos_id, self.eos_id)

    def encode(self, text: str) -> list[int]:
        """Token ids of plain text, without BOS/EOS."""
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [e.ids for e in self.tokenizer.encode_batch(list(texts), add_special_tokens=False)]

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        ids = [i for i in ids if 0 <= i < self.text_vocab_size + len(SPECIAL_TOKENS)]
        return self.tokenizer.decode(ids, skip_special_tokens=skip_special_tokens)

    def __len__(self) -> int:
        return self.text_vocab_size + len(SPECIAL_TOKENS)


def _bos_eos_from_config(path: Path) -> tuple[str, str]:
    if not path.is_file():
        return DEFAULT_BOS_EOS, DEFAULT_BOS_EOS
    config = read_json(path)

    def token(key: str) -> str:
        value = config.get(key) or DEFAULT_BOS_EOS
        return value["content"] if isinstance(value, dict) else value

    return token("bos_token"), token("eos_token")
