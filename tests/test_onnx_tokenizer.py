"""The torch-free CLIP tokenizer (indexer/clip_tokenizer.py) gives open_clip's token ids exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from open_clip.tokenizer import SimpleTokenizer, default_bpe

from indexer.clip_tokenizer import ClipTokenizer, _needs_ftfy, build_tokenizer_json

VARIED = [
    "a dog",
    "A Red  Circle!!",
    "Été à Zürich — naïve café",
    "日本語のテキスト 東京 2023",
    "emoji 🐶🐱 and a 👩‍👩‍👧 family",
    "don't you'll they've I'm we'd she's",
    "'xyz 'S 'LL quoted",
    "a,b.c;d:e?f!g (h) [i] {j} <k> ~l~ `m` $5 100% #7 @me a/b\\c",
    "&amp;lt;b&amp;gt; html &quot;quoted&quot; &#39;",
    "mojibake: Ã©tÃ© â€œquotesâ€\x9d",
    "numbers 12345 3.14 1,000,000 2nd 10x",
    "<start_of_text> inner <end_of_text> tail",
    "tabs\tand\nnewlines\r\n  and   spaces  ",
    "",
    "   ",
    "İstanbul ǅ ß ﬁ ﬀ Ǆ ΣΑΣ",
    "Ω≈ç√∫˜µ≤≥÷ ∞ ± × ≠",
    "\u200b zero width \u00a0nbsp \u2003em space \ufeffbom",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 math 𝟏𝟐𝟑",
    "कैसे हो नमस्ते",
    "مرحبا بالعالم",
    "ﾊﾝｶｸ half-width ＦＵＬＬ ｗｉｄｔｈ",
    "x" * 300,
    " ".join(["word"] * 100),
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "a photo of a kid on a beach at sunset, golden hour, 35mm, f/1.8, bokeh -- very nice!!!",
]


@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory) -> tuple[SimpleTokenizer, ClipTokenizer]:
    path = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    build_tokenizer_json(Path(default_bpe()), path)
    return SimpleTokenizer(), ClipTokenizer(path, context_length=77)


def _random_texts(n: int, seed: int) -> list[str]:
    """Strings mixing ASCII words, punctuation and code points from many scripts and symbol blocks."""
    rng = np.random.default_rng(seed)
    blocks = [
        (0x20, 0x7E),
        (0xA0, 0x24F),
        (0x370, 0x52F),
        (0x590, 0x6FF),
        (0x900, 0x97F),
        (0x3040, 0x30FF),
        (0x4E00, 0x4FFF),
        (0xAC00, 0xAD00),
        (0x2000, 0x2BFF),
        (0x1F300, 0x1F6FF),
        (0xFF00, 0xFFEF),
    ]
    words = ["the", "cat", "Sunset", "beach", "don't", "CAFÉ", "&amp;", "12", "!!", "..."]
    texts = []
    for _ in range(n):
        parts = []
        for _ in range(int(rng.integers(1, 12))):
            if rng.random() < 0.4:
                parts.append(str(rng.choice(words)))
            else:
                lo, hi = blocks[int(rng.integers(len(blocks)))]
                parts.append("".join(chr(int(c)) for c in rng.integers(lo, hi + 1, int(rng.integers(1, 6)))))
        texts.append(" ".join(parts) if rng.random() < 0.7 else "".join(parts))
    return texts


@pytest.mark.parametrize("text", VARIED)
def test_ids_equal_open_clips(tokenizers, text):
    ref, ours = tokenizers
    assert ours([text]).tolist() == ref([text]).numpy().tolist()


def test_random_unicode_strings_equal_open_clips(tokenizers):
    ref, ours = tokenizers
    texts = _random_texts(400, seed=3)
    expected = ref(texts).numpy()
    got = ours(texts)
    assert got.dtype == np.int64 and got.shape == expected.shape
    mismatched = [t for t, a, b in zip(texts, expected, got, strict=True) if (a != b).any()]
    assert not mismatched, mismatched[:5]


def test_ascii_strings_equal_open_clips_with_and_without_ftfy(tokenizers):
    """Plain ASCII skips ftfy (clip_tokenizer._needs_ftfy); entities, control characters and terminal
    escapes still go through it: the ids equal open_clip's either way."""
    ref, ours = tokenizers
    rng = np.random.default_rng(5)
    printable = [chr(i) for i in range(32, 127)] + ["\t", "\n", "\r", " ", " "]
    every = [chr(i) for i in range(128)]
    texts = ["".join(rng.choice(printable, size=int(rng.integers(0, 60)))) for _ in range(300)]
    texts += ["".join(rng.choice(every, size=int(rng.integers(1, 30)))) for _ in range(100)]
    texts += ["a \x1b[31mred\x1b[0m circle", "a\x0bb\x0cc", "rock &amp; roll", "x\x7fy"]
    fast = [t for t in texts if not _needs_ftfy(t)]
    assert len(fast) >= 150 and any(_needs_ftfy(t) for t in texts)
    mismatched = [t for t, a, b in zip(texts, ref(texts).numpy(), ours(texts), strict=True) if (a != b).any()]
    assert not mismatched, mismatched[:5]


@pytest.mark.parametrize("context", [16, 77])
def test_truncation_keeps_end_token_last(tokenizers, context):
    ref, ours = tokenizers
    long_text = "a very long caption about " + "many red circles and blue squares " * 20
    got = ours([long_text, "short"], context_length=context)
    assert got.shape == (2, context)
    assert got[0, -1] == ours.eot_id and got[0, 0] == ours.sot_id
    assert got.tolist() == ref([long_text, "short"], context_length=context).numpy().tolist()
