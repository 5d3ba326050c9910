"""JPEGs kept encoded by the request threads and decoded in batches by torchvision (nvJPEG on a GPU; here the same
function on the CPU, SMCV_JPEG_DECODE=device): equal to Pillow's decode, a bad image fails only its own request,
header limits still apply, and concurrent callers each get their own answer."""

from __future__ import annotations

import io
import struct
import threading

import numpy as np
import pytest
import torch
from PIL import Image

from smcv.data.images import decode_image
from smcv.errors import DataError
from smcv.serving import codecs
from smcv.serving.app import create_app
from smcv.data.jpeg import decode_jpegs
from smcv.serving.request_image import pixels_of

CPU = torch.device("cpu")


def jpeg(width: int = 80, height: int = 60, seed: int = 0, colour: tuple[int, int, int] | None = None, **save) -> bytes:
    """A noisy (or solid) RGB JPEG."""
    if colour is None:
        array = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
        image = Image.fromarray(array, "RGB")
    else:
        image = Image.new("RGB", (width, height), colour)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=90, **save)
    return out.getvalue()


def corrupt(data: bytes) -> bytes:
    """Header intact (Pillow opens it, the end marker is there) but an unknown marker inside the scan: only a full
    decode finds it."""
    scan = data.index(b"\xff\xda") + 20
    return data[:scan] + b"\xff\x78" + data[scan + 2:]


def huge(data: bytes, width: int = 60000, height: int = 60000) -> bytes:
    """The same JPEG with its frame header declaring width x height (a decompression bomb's header)."""
    frame = data.index(b"\xff\xc0")
    return data[:frame + 5] + struct.pack(">HH", height, width) + data[frame + 9:]


def test_torchvision_decode_equals_pillow():
    bodies = [jpeg(80, 60, seed=1), jpeg(33, 17, seed=2), jpeg(64, 48, seed=3, subsampling=0)]
    decoded = decode_jpegs(bodies, CPU)
    for body, pixels in zip(bodies, decoded):
        reference = torch.from_numpy(np.array(decode_image(body, "test"))).permute(2, 0, 1)
        assert pixels.shape == reference.shape and pixels.dtype == torch.uint8
        assert (pixels.int() - reference.int()).abs().max() <= 1  # the same libjpeg-turbo on the CPU: in fact equal


def test_a_bad_jpeg_in_a_batch_fails_alone():
    good = [jpeg(seed=1), jpeg(seed=2)]
    decoded = decode_jpegs([good[0], corrupt(jpeg(seed=3)), good[1]], CPU)
    assert isinstance(decoded[1], DataError) and "0x78" in str(decoded[1])
    assert [tuple(d.shape) for d in (decoded[0], decoded[2])] == [(3, 60, 80)] * 2
    assert torch.equal(decoded[2], decode_jpegs([good[1]], CPU)[0])


def test_request_threads_keep_only_plain_colour_jpegs():
    def kept(body: bytes, mode: str = "RGB") -> bool:
        return codecs.read_request_image(body, "application/x-image", mode, keep_jpeg=True).jpeg is not None

    assert kept(jpeg())
    assert not kept(jpeg(), mode="L")  # grey models: Pillow's luminance, as in training
    grey = io.BytesIO()
    Image.new("L", (20, 10), 9).save(grey, format="JPEG")
    assert not kept(grey.getvalue())
    rotated = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (20, 10)).save(rotated, format="JPEG", exif=exif)
    image = codecs.read_request_image(rotated.getvalue(), "image/jpeg", keep_jpeg=True)
    assert image.jpeg is None and image.size == (10, 20)  # Pillow applied the rotation
    body = jpeg()
    with pytest.raises(Exception) as truncated:
        codecs.read_request_image(body[: len(body) // 2], "image/jpeg", keep_jpeg=True)  # no end marker: Pillow decides
    assert truncated.value.status == 400 and "truncated" in truncated.value.details["detail"]
    with pytest.raises(Exception) as bomb:
        codecs.read_request_image(huge(body), "image/jpeg", keep_jpeg=True)
    assert bomb.value.status == 413 and bomb.value.details["image_pixels"] == 60000 * 60000


def test_pixels_of_mixes_decoded_and_kept_images_and_names_pillows_reason_for_a_bad_one():
    kept = codecs.read_request_image(jpeg(seed=4), "image/jpeg", keep_jpeg=True)
    png = io.BytesIO()
    Image.new("RGB", (7, 5), (1, 2, 3)).save(png, format="PNG")
    decoded = codecs.read_request_image(png.getvalue(), "image/png", keep_jpeg=True)
    broken = codecs.read_request_image(corrupt(jpeg(seed=5)), "image/jpeg", keep_jpeg=True)
    assert broken.jpeg is not None  # its header is fine: only the batched decode finds the damage
    found = pixels_of([decoded, kept, broken], CPU)
    assert found[0] is decoded.pixels and tuple(found[1].shape) == (3, 60, 80)
    assert isinstance(found[2], DataError) and "broken data stream" in str(found[2])  # as on the Pillow path


@pytest.fixture
def device_decoding(monkeypatch):
    monkeypatch.setenv("SMCV_JPEG_DECODE", "device")


def post(client, data, content_type="image/jpeg"):
    return client.post("/invocations", data=data, headers={"Content-Type": content_type, "Accept": "application/json"})


@pytest.mark.parametrize("overlap", [False, True], ids=["one-thread", "overlapped"])
def test_one_bad_jpeg_fails_only_its_request_in_a_shared_batch(make_holder, device_decoding, overlap):
    holder = make_holder(max_batch_size=8, max_delay_ms=300, overlap=overlap)
    assert holder.keep_jpeg and holder.batcher.overlapped == overlap
    app = create_app(holder)
    bodies = [jpeg(colour=(200, 30, 30)), corrupt(jpeg(seed=5)), jpeg(colour=(30, 30, 200))]
    answers: list = [None] * 3

    def call(index: int) -> None:
        answers[index] = post(app.test_client(), bodies[index])

    threads = [threading.Thread(target=call, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert max(holder.predictor.batch_sizes) >= 2  # the good ones shared a batch with the bad one's decode
    assert [a.status_code for a in answers] == [200, 400, 200]
    error = answers[1].get_json()
    assert error["status"] == 400 and "cannot be decoded" in error["error"] and "broken data stream" in error["detail"]
    assert answers[0].get_json()["mean"][0] > 0.7 and answers[2].get_json()["mean"][2] > 0.7
    assert post(app.test_client(), jpeg(colour=(30, 200, 30))).status_code == 200  # the worker keeps serving


@pytest.mark.parametrize("body,content_type,status,named", [
    (corrupt(jpeg()), "image/jpeg", 400, "broken data stream"),
    (jpeg()[:900], "image/jpeg", 400, "truncated"),
    (huge(jpeg()), "image/jpeg", 413, "3600.0 Mpx"),
    (b"GIF89a" + b"\0" * 40, "application/x-image", 415, "GIF"),
    (b"not an image at all", "application/x-image", 400, "cannot be decoded"),
])
def test_bad_payloads_get_a_json_4xx_naming_the_problem(make_holder, device_decoding, body, content_type, status,
                                                          named):
    client = create_app(make_holder()).test_client()
    response = post(client, body, content_type)
    assert response.status_code == status and response.mimetype == "application/json"
    assert named in str(response.get_json())
    assert post(client, jpeg(colour=(9, 9, 9))).status_code == 200


@pytest.mark.parametrize("decoding,overlap", [("device", "off"), ("pil", "off"), ("device", "on"), ("pil", "on")])
def test_concurrent_callers_each_get_their_own_answer(make_holder, monkeypatch, decoding, overlap):
    """16 threads, each posting its own colour at its own size (JPEG and PNG mixed), batched together; with
    SMCV_PREPARE_OVERLAP=on the next batch is decoded and prepared while the model runs the current one."""
    monkeypatch.setenv("SMCV_JPEG_DECODE", decoding)
    monkeypatch.setenv("SMCV_PREPARE_OVERLAP", overlap)
    holder = make_holder(max_batch_size=8, max_delay_ms=50)
    assert holder.batcher.overlapped == (overlap == "on")
    app = create_app(holder)
    colours = [(16 * i, 255 - 16 * i, (80 * i) % 256) for i in range(16)]
    answers: list = [None] * 16

    def call(index: int) -> None:
        fmt = "JPEG" if index % 2 else "PNG"
        out = io.BytesIO()
        Image.new("RGB", (20 + 7 * index, 30 + 3 * index), colours[index]).save(out, format=fmt)
        answers[index] = post(app.test_client(), out.getvalue(), f"image/{fmt.lower()}")

    threads = [threading.Thread(target=call, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for colour, answer in zip(colours, answers):
        assert answer.status_code == 200, answer.get_data(as_text=True)
        assert np.abs(np.array(answer.get_json()["mean"]) * 255 - colour).max() < 4  # JPEG's rounding at most
    assert max(holder.predictor.batch_sizes) > 1 and sum(holder.predictor.batch_sizes) >= 16


@pytest.mark.parametrize("task,fmt,overlap", [("classification", "JPEG", False), ("segmentation", "PNG", False),
                                              ("segmentation", "JPEG", False), ("classification", "JPEG", True),
                                              ("segmentation", "PNG", True)])
def test_concurrent_callers_of_a_real_model_get_the_single_image_answer(tmp_path, monkeypatch, task, fmt, overlap):
    """16 threads post different photos of different sizes to a tiny real model; each answer equals the one the
    predictor gives for that image alone (probabilities within 1e-5, masks on >= 99% of the pixels), with and
    without the prepare stage overlapping the model."""
    from smcv.serving import direct
    from smcv.serving.model_holder import ModelHolder
    from tests.helpers.exportmodels import write_tiny_model
    from tests.unit.serving.test_serving_prepare import photos

    monkeypatch.setenv("SMCV_JPEG_DECODE", "device")
    model_dir = write_tiny_model(task, tmp_path / task)
    holder = ModelHolder(model_dir, "cpu", max_batch_size=8, max_delay_ms=50, overlap=overlap)
    holder.load()
    assert holder.error is None and holder.batcher.overlapped == overlap
    sizes: list[int] = []
    run_batch = holder.predictor.predict_batch

    def recording(batch, metas):  # the real predict_batch, with the batch sizes noted
        sizes.append(int(batch.shape[0]))
        return run_batch(batch, metas)

    monkeypatch.setattr(holder.predictor, "predict_batch", recording)
    try:
        app = create_app(holder)
        images = photos([(30 + 9 * i, 70 - 2 * i) for i in range(16)], seed=11)
        bodies = []
        for image in images:
            out = io.BytesIO()
            image.save(out, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
            bodies.append(out.getvalue())
        accept = "application/json" if task == "classification" else "image/png"
        answers: list = [None] * 16

        def call(index: int) -> None:
            answers[index] = app.test_client().post("/invocations", data=bodies[index],
                                                    headers={"Content-Type": f"image/{fmt.lower()}", "Accept": accept})

        threads = [threading.Thread(target=call, args=(i,)) for i in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert max(sizes) > 1 and sum(sizes) == 16  # the callers shared batches
        for body, answer in zip(bodies, answers):
            assert answer.status_code == 200, answer.get_data(as_text=True)
            alone = direct.answer(holder.predictor, Image.open(io.BytesIO(body)), accept)
            if task == "classification":
                assert np.abs(np.subtract(answer.get_json(), json_list(alone))).max() < 1e-5
            else:
                got, want = np.array(Image.open(io.BytesIO(answer.data))), np.array(Image.open(io.BytesIO(alone)))
                assert got.shape == want.shape and (got == want).mean() >= 0.99
    finally:
        holder.close()


def json_list(body: bytes) -> list:
    import json

    return json.loads(body)


def test_the_preparing_stream_is_drained_before_the_gpu_decoder_writes(monkeypatch):
    """nvJPEG writes its outputs without waiting for the caller's stream: smcv drains that stream first, so no block
    recycled from a tensor that queued kernels still read can be overwritten (pytorch/vision#9606)."""
    import smcv.data.jpeg as jpeg_module

    calls = []

    class Stream:
        def synchronize(self):
            calls.append("synchronize")

    def decoder(encoded, mode, device):
        calls.append("decode")
        return [torch.zeros((3, 2, 2), dtype=torch.uint8) for _ in encoded]

    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: Stream())
    monkeypatch.setattr(jpeg_module, "decode_jpeg", decoder)
    assert len(decode_jpegs([jpeg(seed=1)], torch.device("cuda"))) == 1
    assert calls == ["synchronize", "decode"]
    calls.clear()
    decode_jpegs([jpeg(seed=1)], CPU)
    assert calls == ["decode"]  # the CPU decoder has no stream to wait for
