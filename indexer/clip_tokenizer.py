"""CLIP's BPE tokenizer without torch: open_clip's token ids from HF `tokenizers` (Rust) and numpy.

open_clip's SimpleTokenizer imports torch (it returns a LongTensor), which would undo the point of
the ONNX runtime (start-up, memory). This builds the same byte-level BPE from open_clip's own
vocabulary file (`bpe_simple_vocab_16e6.txt.gz`) as a `tokenizers.Tokenizer`, saved as tokenizer.json
next to the exported towers. Text cleaning stays in Python so that it is open_clip's exactly (ftfy,
double html unescape, whitespace collapse, lower case); the Rust side only splits with CLIP's pattern,
maps bytes to symbols and applies the merges. tests/test_onnx_tokenizer.py checks equality of the ids
with open_clip's on unicode, long, punctuated and odd strings.

    build_tokenizer_json(bpe_gz, out_path)      # at export time
    tok = ClipTokenizer(out_path, context_length=77)
    tok(["a dog"]) -> int64 array [N, context_length]: <start> ids <end> 0..., truncated like open_clip
"""

from __future__ import annotations

import gzip
import html
from collections.abc import Sequence
from pathlib import Path

import numpy as np

SOT, EOT = "<start_of_text>", "<end_of_text>"
# open_clip's pattern without the special-token alternatives (tokenizers extracts added tokens first).
CLIP_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""
# open_clip reads this many merges from the vocabulary file (49152 ids - 256 bytes - 2 specials).
MERGES = 49152 - 256 - 2


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable symbol table, which CLIP's vocabulary is written in."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    symbols = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            symbols.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, symbols), strict=True))


def build_tokenizer_json(bpe_gz: Path, out_path: Path) -> None:
    """Write a tokenizers.Tokenizer equivalent to open_clip's SimpleTokenizer (clean='lower')."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers

    with gzip.open(bpe_gz) as f:
        lines = f.read().decode("utf-8").split("\n")[1 : MERGES + 1]
    merges = [tuple(line.split()) for line in lines]
    base = list(_bytes_to_unicode().values())
    vocab = base + [s + "</w>" for s in base] + ["".join(m) for m in merges] + [SOT, EOT]
    bpe = models.BPE(
        vocab={s: i for i, s in enumerate(vocab)},
        merges=merges,
        end_of_word_suffix="</w>",
        fuse_unk=False,
    )
    tok = Tokenizer(bpe)
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(CLIP_PATTERN), behavior="removed", invert=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    # Text that spells a special token gets its id, as open_clip's pattern does.
    tok.add_special_tokens([AddedToken(SOT, normalized=False), AddedToken(EOT, normalized=False)])
    out_path.write_text(tok.to_str())


def clean_lower(text: str) -> str:
    """open_clip's clean='lower': fix mojibake, unescape html twice, collapse whitespace, lower case."""
    if not _needs_ftfy(text):  # what a typed query usually is: ftfy and html would leave it as it is
        return " ".join(text.split()).lower()
    import ftfy  # imported here: its import and first call cost a cold query ~0.13 s

    text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
    return " ".join(text.split()).strip().lower()


def _needs_ftfy(text: str) -> bool:
    """False for text ftfy.fix_text and html.unescape return unchanged, up to the whitespace that
    clean_lower collapses anyway: ASCII (no mojibake, quotes or widths to fix) without an entity to
    unescape and without the control characters and terminal escapes ftfy removes."""
    if not text.isascii() or "&" in text:
        return True
    return any((c < " " and c not in "\t\n\r") or c == "\x7f" for c in text)


class ClipTokenizer:
    """Token ids as open_clip's SimpleTokenizer gives them, as int64 numpy rows."""

    def __init__(self, tokenizer_json: Path, context_length: int):
        from tokenizers import Tokenizer

        self._tok = Tokenizer.from_file(str(tokenizer_json))
        self.context_length = context_length
        self.sot_id = self._tok.token_to_id(SOT)
        self.eot_id = self._tok.token_to_id(EOT)
        if self.sot_id is None or self.eot_id is None:
            raise ValueError(
                f"{tokenizer_json} is not a CLIP tokenizer (no {SOT}/{EOT}); export the model again"
            )

    def encode(self, text: str) -> list[int]:
        """The ids between <start> and <end>, not truncated."""
        return self._tok.encode(clean_lower(text), add_special_tokens=False).ids

    def __call__(self, texts: Sequence[str], context_length: int | None = None) -> np.ndarray:
        n = context_length or self.context_length
        encoded = self._tok.encode_batch([clean_lower(t) for t in texts], add_special_tokens=False)
        out = np.zeros((len(encoded), n), dtype=np.int64)
        for row, enc in enumerate(encoded):
            ids = [self.sot_id, *enc.ids, self.eot_id]
            if len(ids) > n:  # truncate, keeping <end> last: open_clip's rule
                ids = ids[:n]
                ids[-1] = self.eot_id
            out[row, : len(ids)] = ids
        return out
