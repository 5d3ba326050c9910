"""Serving's device path on a GPU (pytest tests/gpu): nvJPEG decode against Pillow, the batched resize on the GPU
against the CPU's, a broken JPEG failing alone, and served answers agreeing with the CPU's.

Bounds: the resize on the GPU rounds through float, the CPU's runs in integers: at most 2 grey levels apart (mean
under 0.1). nvJPEG's IDCT and chroma upsampling differ from libjpeg-turbo's: mean under 2 levels on a photo-like
image. Answers: probabilities within 2e-2 (preprocessing moves them by far less than 1e-2, BF16 autocast by up to
about 1e-2, as in test_cuda.py's parity check)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms.v2 import functional as F

from smcv import artifact
from smcv.data.images import decode_image
from smcv.errors import DataError
from smcv.serving import codecs, direct
from smcv.data.jpeg import decode_jpegs
from smcv.serving.request_image import pixels_of
from smcv.tasks import get_task
from tests.helpers.exportmodels import write_tiny_model
from tests.unit.serving.test_serving_device_decode import corrupt
from tests.unit.serving.test_serving_prepare import MIXED, photos

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

CUDA = torch.device("cuda")


def jpegs(sizes=MIXED) -> list[bytes]:
    found = []
    for image in photos(sizes):
        out = io.BytesIO()
        image.save(out, format="JPEG", quality=90)
        found.append(out.getvalue())
    return found


def test_nvjpeg_decode_is_close_to_pillow():
    for body, pixels in zip(jpegs(), decode_jpegs(jpegs(), CUDA)):
        reference = F.pil_to_tensor(decode_image(body, "test")).to(CUDA)
        assert pixels.device.type == "cuda" and pixels.shape == reference.shape
        assert (pixels.float() - reference.float()).abs().mean() < 2.0


def test_a_broken_jpeg_in_a_cuda_batch_fails_alone():
    bodies = jpegs()[:2]
    images = [codecs.read_request_image(b, "image/jpeg", keep_jpeg=True) for b in (bodies[0], corrupt(bodies[0]), bodies[1])]
    found = pixels_of(images, CUDA)
    assert isinstance(found[1], DataError)
    assert all(isinstance(found[i], torch.Tensor) and found[i].device.type == "cuda" for i in (0, 2))


@pytest.mark.parametrize("task", ["classification", "detection", "segmentation"])
def test_batched_resize_on_the_gpu_matches_the_cpu(tmp_path, task):
    model_dir = write_tiny_model(task, tmp_path / task)
    manifest, state = artifact.load_manifest(model_dir), artifact.load_state_dict(model_dir)
    cpu = get_task(task).build_predictor(manifest, state, torch.device("cpu"))
    gpu = get_task(task).build_predictor(manifest, state, CUDA)
    pixels = [F.pil_to_tensor(image) for image in photos(MIXED)]
    on_cpu, on_gpu = cpu.prepare(pixels), gpu.prepare(pixels).cpu()
    levels = (on_cpu - on_gpu).abs() * torch.tensor(cpu.std).view(1, -1, 1, 1) * 255.0
    assert levels.max() <= 2.0 + 1e-3 and levels.mean() < 0.1


def test_classification_answers_on_the_gpu_match_the_cpu(tmp_path):
    model_dir = write_tiny_model("classification", tmp_path / "ic")
    manifest, state = artifact.load_manifest(model_dir), artifact.load_state_dict(model_dir)
    images = [Image.open(io.BytesIO(body)) for body in jpegs()]
    answers = [[result for result, _ in direct.predict(get_task("classification").build_predictor(manifest, state, d),
                                                       images, "application/json")] for d in (torch.device("cpu"), CUDA)]
    assert np.abs(np.subtract(*answers)).max() < 2e-2


@pytest.mark.parametrize("task", ["classification", "segmentation"])
def test_overlapped_prepare_on_a_side_stream_answers_like_one_thread(tmp_path, monkeypatch, task):
    """The next batch decoded and prepared on a side CUDA stream while the model runs: every concurrent caller gets
    the answer of the one-thread path (same kept-JPEG decode, same device)."""
    import threading

    from smcv.serving.model_holder import ModelHolder
    from smcv.serving.request_image import RequestImage

    monkeypatch.setenv("SMCV_JPEG_DECODE", "device")
    model_dir = write_tiny_model(task, tmp_path / task)
    holders = {overlap: ModelHolder(model_dir, "cuda", max_batch_size=4, max_delay_ms=20, overlap=overlap)
               for overlap in (False, True)}
    bodies = jpegs() * 3
    accept = "application/json" if task == "classification" else "image/png"
    try:
        answers: dict[bool, list] = {}
        for overlap, holder in holders.items():
            holder.load()
            assert holder.error is None and holder.batcher.overlapped == overlap
            assert (holder._prepare_stream is not None) == overlap
            found: list = [None] * len(bodies)

            def call(index: int) -> None:
                image = Image.open(io.BytesIO(bodies[index]))
                request = RequestImage(None, bodies[index], image.size, image.size)
                found[index] = holder.run(holder.predictor, request, accept)

            threads = [threading.Thread(target=call, args=(i,)) for i in range(len(bodies))]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(120)
            answers[overlap] = found
        if task == "classification":
            assert np.abs(np.subtract([json_of(a) for a in answers[True]],
                                      [json_of(a) for a in answers[False]])).max() < 1e-4
        else:
            for one, other in zip(answers[True], answers[False]):
                got, want = np.array(Image.open(io.BytesIO(one))), np.array(Image.open(io.BytesIO(other)))
                assert got.shape == want.shape and (got == want).mean() >= 0.999
    finally:
        for holder in holders.values():
            holder.close()


def json_of(body: bytes) -> list:
    import json

    return json.loads(body)


def test_the_gpu_decoder_never_overwrites_memory_queued_kernels_still_read():
    """Tensors the size of the decoder's outputs are freed while reductions over them are still queued behind a long
    kernel; the decode that follows must not write into them before the reductions ran (pytorch/vision#9606)."""
    body = jpegs([(256, 256)])[0]
    corrupted = 0
    for _ in range(20):
        tensors = [torch.full((3, 256, 256), value, dtype=torch.uint8, device=CUDA) for value in range(1, 9)]
        torch.cuda.synchronize()
        torch.cuda._sleep(20_000_000)  # keeps the stream busy while the reductions below wait their turn
        sums = [tensor.sum(dtype=torch.int64) for tensor in tensors]
        del tensors
        decode_jpegs([body] * 8, CUDA)
        torch.cuda.synchronize()
        corrupted += sum(int(total) != value * 3 * 256 * 256 for value, total in enumerate(sums, start=1))
    assert corrupted == 0
