"""Export an open_clip model's two towers to ONNX once, so that a CPU can run them without torch.

    from indexer.onnx_export import export
    manifest_path = export("ViT-B-32-256:datacomp_s34b_b86k", out_dir, int8=True)

needs torch + open_clip (+ onnx), like `photoseek fetch-model`; the result runs with onnxruntime +
numpy + tokenizers only (indexer/onnx_towers.py). out_dir then holds:

    image.onnx          float32 N x 3 x S x S normalised pixels -> N x D image features (not unit)
    text.onnx           int64 N x L tokens, L <= context length -> N x D text features (not unit)
    image.int8.onnx     with int8=True: the same with dynamically quantised weights (MatMul/Gemm)
    text.int8.onnx
    tokenizer.json      open_clip's BPE vocabulary as a `tokenizers` file (indexer/clip_tokenizer.py)
    onnx_model.json     what running them needs: the model's identity (name, pretrained, file_hash,
                        dim, as the catalog records it), image size, mean/std, logit scale, context
                        length, whether the text tower may be given only the used positions

The graphs use the names rclip's convert script uses ("input" -> "output", opset 18, TorchScript
exporter, MHA fast path off), so rclip runs image.onnx / text.onnx as they are (bench/rclip_compare.py).
The text graph takes any sequence length: CLIP's text tower is causal and pools at the end-of-text
token, so a query of 10 tokens runs 10 positions instead of 77 (see encoder._encode_used_tokens).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import open_clip
import torch

from indexer.clip_tokenizer import build_tokenizer_json
from indexer.encoder import ModelSpec, load_encoder

log = logging.getLogger(__name__)

MANIFEST = "onnx_model.json"
FORMAT = 1  # bump when the files or the manifest change meaning: older exports are then redone
OPSET = 18
FILES = {
    "fp32": {"image": "image.onnx", "text": "text.onnx"},
    "int8": {"image": "image.int8.onnx", "text": "text.int8.onnx"},
}
TOKENIZER = "tokenizer.json"
# The exported graph must give the torch model's vectors (unit rows) to within this cosine.
PARITY_COSINE = 0.9999


class ExportError(RuntimeError):
    """The model cannot be exported; the message says what to use instead."""


class _TextTower(torch.nn.Module):
    """open_clip CLIP.encode_text over however many positions it is given (the causal mask and the
    positional embedding are cut to the input's length); pooled at the end-of-text token."""

    def __init__(self, clip: open_clip.CLIP):
        super().__init__()
        self.clip = clip

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        m = self.clip
        n = tokens.shape[1]
        x = m.token_embedding(tokens) + m.positional_embedding[:n]
        x = m.ln_final(m.transformer(x, attn_mask=m.attn_mask[:n, :n]))
        x = x[torch.arange(x.shape[0]), tokens.argmax(dim=-1)]
        proj = m.text_projection
        return proj(x) if isinstance(proj, torch.nn.Linear) else x @ proj


class _SelfAttention(torch.nn.Module):
    """nn.MultiheadAttention (batch first, self-attention, same weights) written so that the tracer
    keeps the sequence length symbolic: torch's multi_head_attention_forward bakes the traced length
    into a Reshape, which would pin the text graph to the example's token count."""

    def __init__(self, mha: torch.nn.MultiheadAttention):
        super().__init__()
        self.mha = mha

    def forward(self, q, k=None, v=None, need_weights=False, attn_mask=None):
        m = self.mha
        heads, width = m.num_heads, m.embed_dim
        x = torch.nn.functional.linear(q, m.in_proj_weight, m.in_proj_bias)  # N x L x 3W
        x = x.reshape(q.shape[0], -1, 3, heads, width // heads).permute(2, 0, 3, 1, 4)
        out = torch.nn.functional.scaled_dot_product_attention(x[0], x[1], x[2], attn_mask=attn_mask)
        out = out.transpose(1, 2).reshape(q.shape[0], -1, width)
        return m.out_proj(out), None


@contextmanager
def _traceable_text_attention(clip: open_clip.CLIP):
    blocks = [b for b in clip.transformer.resblocks if isinstance(b.attn, torch.nn.MultiheadAttention)]
    saved = [b.attn for b in blocks]
    try:
        for b in blocks:
            b.attn = _SelfAttention(b.attn)
        yield
    finally:
        for b, attn in zip(blocks, saved, strict=True):
            b.attn = attn


class _ImageTower(torch.nn.Module):
    def __init__(self, visual: torch.nn.Module):
        super().__init__()
        self.visual = visual

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.visual(pixels)


@contextmanager
def _export_mode():
    """TorchScript export as rclip does it: the fused MHA kernel has no ONNX form; exporter chatter
    (deprecation of this exporter, tracer warnings about shape arithmetic) is expected, not news."""
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)


def _onnx_export(module: torch.nn.Module, example: torch.Tensor, path: Path, dynamic: dict) -> None:
    with _export_mode(), torch.no_grad():
        torch.onnx.export(
            module.eval(),
            (example,),
            str(path),
            input_names=["input"],
            output_names=["output"],
            dynamic_axes={"input": dynamic, "output": {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )


def _text_trimmable(model: torch.nn.Module) -> bool:
    """Causal, pooled at <end>, and built of blocks whose attention _SelfAttention can stand in for."""
    if type(model) is not open_clip.CLIP or model.text_pool_type != "argmax" or model.attn_mask is None:
        return False
    return all(
        isinstance(b.attn, torch.nn.MultiheadAttention)
        and b.attn.batch_first
        and b.attn._qkv_same_embed_dim
        and not hasattr(b, "ln_1_kv")
        for b in model.transformer.resblocks
    )


def _tokenizer_vocab(spec: ModelSpec) -> Path:
    tok = open_clip.get_tokenizer(spec.name)
    simple = open_clip.tokenizer.SimpleTokenizer
    if type(tok) is not simple or tok.clean_fn is not open_clip.tokenizer._clean_lower or tok.reduction_fn:
        raise ExportError(
            f"{spec} uses a tokenizer other than CLIP's BPE ({type(tok).__name__}); "
            "run it with runtime = 'torch'"
        )
    return Path(open_clip.tokenizer.default_bpe())


def quantize_int8(src: Path, dst: Path) -> None:
    """Dynamic int8 quantisation: weights of MatMul/Gemm (activations quantised per batch at run time)
    and the token embedding table (Gather; ~100 MB of ViT-B-32-256's text tower in fp32)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    ops = ["MatMul", "Gemm", "Gather"]
    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, op_types_to_quantize=ops)


def export(spec: str | ModelSpec, out_dir: Path, int8: bool = False) -> Path:
    """Write the towers, tokenizer and manifest of `spec` into out_dir; returns the manifest's path.

    Written into a temporary folder first and moved into place, so a half-written export is never
    taken for a whole one. Checks the exported graphs against torch before keeping them."""
    spec = ModelSpec.parse(spec) if isinstance(spec, str) else spec
    out_dir = Path(out_dir)
    encoder = load_encoder(spec, "cpu", text_bf16=False)
    model = encoder.model
    if not _text_trimmable(model) and type(model) is not open_clip.CLIP:
        raise ExportError(f"{spec} is a {type(model).__name__}, not a CLIP; run it with runtime = 'torch'")
    vocab = _tokenizer_vocab(spec)
    context = int(model.context_length)
    size = encoder.image_size
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".onnx-export-", dir=out_dir.parent))
    work.chmod(0o755)  # mkdtemp makes it private; an export is a shared, read-only cache
    try:
        trim = _text_trimmable(model)
        text_module = _TextTower(model) if trim else _EncodeText(model)
        _onnx_export(_ImageTower(model.visual), torch.zeros(1, 3, size, size), work / FILES["fp32"]["image"],
                     {0: "batch"})  # fmt: skip
        if trim:
            with _traceable_text_attention(model):
                example = torch.zeros(2, min(8, context), dtype=torch.long)
                _onnx_export(text_module, example, work / FILES["fp32"]["text"], {0: "batch", 1: "tokens"})
        else:
            example = torch.zeros(2, context, dtype=torch.long)
            _onnx_export(text_module, example, work / FILES["fp32"]["text"], {0: "batch"})
        build_tokenizer_json(vocab, work / TOKENIZER)
        precisions = ["fp32"]
        if int8:
            for tower in ("image", "text"):
                quantize_int8(work / FILES["fp32"][tower], work / FILES["int8"][tower])
            precisions.append("int8")
        ident = encoder.identity
        manifest = {
            "format": FORMAT,
            "spec": str(spec),
            "identity": {
                "name": ident.name,
                "pretrained": ident.pretrained,
                "file_hash": ident.file_hash,
                "dim": ident.dim,
            },
            "image_size": size,
            "mean": [
                float(v) for v in (getattr(model.visual, "image_mean", None) or open_clip.OPENAI_DATASET_MEAN)
            ],
            "std": [
                float(v) for v in (getattr(model.visual, "image_std", None) or open_clip.OPENAI_DATASET_STD)
            ],
            "logit_scale": encoder.logit_scale,
            "context_length": context,
            "text_trim": trim,
            "files": {p: FILES[p] for p in precisions},
            "tokenizer": TOKENIZER,
            "opset": OPSET,
            "exported_with": {"torch": torch.__version__, "open_clip": open_clip.__version__},
        }
        (work / MANIFEST).write_text(json.dumps(manifest, indent=2))
        _check_parity(encoder, work)
        # Swap by two renames: a reader never finds a half-written folder, and the old one (whose files
        # open sessions may still map) is removed only once the new one is in place.
        old = None
        if out_dir.exists():
            old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
            out_dir.rename(old)
        work.rename(out_dir)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log.info("exported %s to %s (%s)", spec, out_dir, ", ".join(precisions))
    return out_dir / MANIFEST


class _EncodeText(torch.nn.Module):
    """A CLIP text tower that cannot be cut to the used positions: run as open_clip runs it."""

    def __init__(self, clip: torch.nn.Module):
        super().__init__()
        self.clip = clip

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.clip.encode_text(tokens)


def _check_parity(encoder, folder: Path) -> None:
    """The fp32 graphs give the torch vectors: a broken export must fail here, not in a search."""
    from indexer.onnx_towers import OnnxImageTower, OnnxTextTower

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (2, encoder.image_size, encoder.image_size, 3), dtype=np.uint8)
    texts = ["a photo of a dog", "a red circle on a blue background, large"]
    pairs = [
        (encoder.encode_pixels(pixels), OnnxImageTower(folder, threads=1).encode_pixels(pixels), "image"),
        (encoder.encode_texts(texts), OnnxTextTower(folder, threads=1).encode_texts(texts), "text"),
    ]
    for ref, got, what in pairs:
        cos = float(np.min(np.sum(ref * got, axis=1)))
        if cos < PARITY_COSINE:
            raise ExportError(f"the exported {what} tower is off (cosine {cos:.6f} to torch); not kept")
