"""The embed stage: a batch of PhotoReads in, vectors for the contents this model has not seen out.

Contents are keyed by hash: a duplicate or a moved file costs no model time. On CUDA, the JPEGs
come undecoded from the workers and are decoded here in batches on the GPU (indexer/gpu_decode.py);
whatever that path refuses, Pillow decodes. The model is asked for only when something needs it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import numpy as np

from indexer.catalog import embeddings
from indexer.catalog.store import Catalog
from indexer.decode import DecodeError, PhotoRead, decode_bytes
from indexer.preprocess import fit_square
from indexer.settings import Settings

if TYPE_CHECKING:
    import torch

    from indexer.encoder import Encoder
    from indexer.gpu_decode import GpuJpegDecoder

log = logging.getLogger(__name__)


class Embedder:
    def __init__(
        self,
        settings: Settings,
        catalog: Catalog,
        encoder: Callable[[], Encoder],
        model_id: Callable[[], int],
    ) -> None:
        self.settings = settings
        self.catalog = catalog
        self._encoder = encoder
        self._model_id = model_id  # resolved (and the model checked) on first use
        self.jpeg_decoder: GpuJpegDecoder | None = None
        self._gpu_checked = False
        self.inflight: set[str] = set()  # content hashes embedded whose batch is not committed yet

    @property
    def image_size(self) -> int:
        return self._encoder().image_size

    def gpu_jpeg(self) -> bool:
        """Whether the workers should ship JPEGs undecoded (CUDA with gpu_decode); loads the model."""
        if not self._gpu_checked:
            self._gpu_checked = True
            enc = self._encoder()
            if self.settings.gpu_decode and enc.device == "cuda":
                from indexer.gpu_decode import GpuJpegDecoder, gpu_jpeg_available

                if gpu_jpeg_available(enc.device):
                    self.jpeg_decoder = GpuJpegDecoder(enc.image_size, enc.device)
        return self.jpeg_decoder is not None

    def use_jpeg_decoder(self, decoder: GpuJpegDecoder | None) -> None:
        """Decode JPEGs in batches with this decoder (None: in the workers, with Pillow)."""
        self.jpeg_decoder, self._gpu_checked = decoder, True

    def embed(self, batch: list[PhotoRead]) -> dict[str, np.ndarray]:
        """Vectors of this batch's contents that have no embedding of this model yet."""
        wanted = {r.content_hash: r for r in batch if r.error is None and r.content_hash}
        todo = self.to_embed(batch)
        vectors: dict[str, np.ndarray] = {}
        if todo:
            todo, pixels = self._model_inputs(todo)
            if todo:
                vecs = self._encoder().encode_pixels(pixels)
                vectors = {r.content_hash: v for r, v in zip(todo, vecs, strict=True)}  # type: ignore[misc]
        failed = {r.content_hash: r.error for r in wanted.values() if r.error is not None}
        for r in batch:
            r.jpeg = None  # decoded or not needed: free the bytes before the batch waits for its commit
            if r.error is None and r.content_hash in failed:
                r.error = failed[r.content_hash]  # a duplicate of a file that failed to decode
        self.inflight.update(vectors)
        return vectors

    def to_embed(self, batch: list[PhotoRead]) -> list[PhotoRead]:
        """One read per content of this batch that this model has not embedded and that no batch
        before it is embedding (in flight: its commit is ahead of this batch's)."""
        wanted = {r.content_hash: r for r in batch if r.error is None and r.content_hash}
        if not wanted:
            return []
        # The in-flight set is read before the catalog: a hash that leaves it was committed first.
        inflight = set(self.inflight)
        with self.catalog.session() as s:
            have = embeddings.embedded_among(s, self._model_id(), list(wanted))
        return [r for h, r in wanted.items() if h not in have and h not in inflight]

    def reserve(self, batch: list[PhotoRead]) -> list[PhotoRead]:
        """to_embed, for an embedder elsewhere (a Ray cluster): the contents count as in flight from now
        on, so a later batch does not embed them again while this one is out (see committed())."""
        todo = self.to_embed(batch)
        self.inflight.update(r.content_hash for r in todo)  # type: ignore[misc]
        return todo

    def committed(self, hashes: dict[str, np.ndarray]) -> None:
        self.inflight.difference_update(hashes)

    def _model_inputs(self, reads: list[PhotoRead]) -> tuple[list[PhotoRead], np.ndarray | torch.Tensor]:
        """The reads that decoded, and their pixels: on the GPU when the JPEGs were decoded there."""
        decoder = self.jpeg_decoder
        if decoder is not None and any(r.jpeg is not None for r in reads):
            try:
                return self._batch_decoded(reads, decoder)
            except Exception:  # a broken GPU path (driver, memory) must not stop the indexing
                log.exception("batch JPEG decoding failed; Pillow decodes the JPEGs from now on")
                self.jpeg_decoder = None
        for r in reads:
            if r.jpeg is not None and r.pixels is None and r.error is None:
                self._decode_here(r)
        kept = [r for r in reads if r.error is None]
        size = self.image_size
        return kept, np.stack([r.pixels for r in kept]) if kept else np.zeros((0, size, size, 3), np.uint8)

    def _batch_decoded(
        self, reads: list[PhotoRead], decoder: GpuJpegDecoder
    ) -> tuple[list[PhotoRead], torch.Tensor]:
        import torch

        fitted: dict[int, torch.Tensor] = {}  # read index -> its S x S x 3 model input on the device
        idx = [i for i, r in enumerate(reads) if r.jpeg is not None]
        for part in _by_pixels(idx, reads, decoder.max_pixels):  # bounds the full-size images in memory
            images = decoder.decode([reads[i].jpeg for i in part])  # type: ignore[misc]
            ok = [(i, img) for i, img in zip(part, images, strict=True) if img is not None]
            for i, img in zip(part, images, strict=True):
                if img is None:
                    self._decode_here(reads[i])  # what nvJPEG refuses, Pillow decodes (or names the problem)
            if ok:
                fitted.update(zip([i for i, _ in ok], decoder.fit([img for _, img in ok]), strict=True))
            del images, ok
        kept = [i for i, r in enumerate(reads) if r.error is None]
        size = decoder.size
        out = torch.empty((len(kept), size, size, 3), dtype=torch.uint8, device=decoder.device)
        g = [k for k, i in enumerate(kept) if i in fitted]
        if g:
            out[g] = torch.stack([fitted[kept[k]] for k in g])
        c = [k for k, i in enumerate(kept) if i not in fitted]
        if c:
            out[c] = torch.from_numpy(np.stack([reads[kept[k]].pixels for k in c])).to(decoder.device)
        return [reads[i] for i in kept], out

    def _decode_here(self, r: PhotoRead) -> None:
        assert r.jpeg is not None
        try:
            d = decode_bytes(r.jpeg, r.path, self.settings.max_megapixels, draft=self.image_size)
            r.pixels = fit_square(d.image, self.image_size)
        except DecodeError as exc:
            r.error = str(exc)


def _by_pixels(idx: list[int], reads: list[PhotoRead], limit: float) -> Iterator[list[int]]:
    """Runs of `idx` whose photos hold at most `limit` pixels together (at least one photo each)."""
    part: list[int] = []
    total = 0.0
    for i in idx:
        d = reads[i].decoded
        pixels = float(d.width * d.height) if d else 0.0
        if part and total + pixels > limit:
            yield part
            part, total = [], 0.0
        part.append(i)
        total += pixels
    if part:
        yield part
