"""GPU paths, checked against the CPU as the oracle. Skipped cleanly where there is no CUDA (CI)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine"),
]


def test_fp16_cuda_encoder_matches_cpu(library):
    from PIL import Image

    from indexer.encoder import load_encoder

    cpu, gpu = load_encoder("toy", "cpu"), load_encoder("toy", "cuda")
    assert gpu.dtype == torch.float16 and gpu.identity == cpu.identity
    images = [Image.open(p).convert("RGB") for p in sorted(library.rglob("*.jpg"))[:16]]
    a, b = cpu.encode_images(images), gpu.encode_images(images)
    assert np.min(np.sum(a * b, axis=1)) > 0.995  # cosine between fp32 CPU and fp16 GPU embeddings
    ta, tb = cpu.encode_texts(["a red circle", "a star"]), gpu.encode_texts(["a red circle", "a star"])
    assert np.min(np.sum(ta * tb, axis=1)) > 0.995


def test_faiss_gpu_search_matches_cpu_when_available():

    from indexer.catalog.store import ModelIdentity
    from indexer.vectors import VectorIndex, faiss_gpu_available

    if not faiss_gpu_available():
        pytest.skip("faiss-cpu is installed (install photoseek[gpu] for faiss-gpu)")
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(20_000, 64)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    vi = VectorIndex(ModelIdentity("x", "y", "", 64), 1)
    vi.index.add_with_ids(vecs, np.arange(1, 20_001))
    q = vecs[123]
    cpu_scores, cpu_ids = vi.index.search(q[None], 10)
    scores, ids = vi.search(q, 10)  # above 10k vectors this goes through the GPU copy
    assert vi._gpu is not None or vi._gpu_failed  # copied, or (fp16 flat) kept on the CPU cleanly
    assert ids.tolist() == cpu_ids[0].tolist()
    assert np.allclose(scores, cpu_scores[0], atol=1e-4)
