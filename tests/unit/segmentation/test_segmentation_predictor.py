"""Serving: every response format at the request image's size; the protobuf parsed back independently."""

from __future__ import annotations

import io
import json
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from smcv.segmentation.model import IMAGENET_MEAN, IMAGENET_STD, build_network
from smcv.segmentation.predictor import JSON_PROBABILITY_SIDE, RESPONSE_TYPES, SegmentationPredictor
from smcv.serving import direct
from smcv.tasks.segmentation import SegmentationTask

CPU = torch.device("cpu")


class RedIsForeground(torch.nn.Module):
    """A stand-in network: class 1 where the (normalised) red channel is bright, class 0 elsewhere."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fg = x[:, :1] * 4.0
        return torch.cat([torch.zeros_like(fg), fg], dim=1)


def half_red(width=50, height=30) -> Image.Image:
    array = np.zeros((height, width, 3), np.uint8)
    array[:, : width // 2, 0] = 255
    return Image.fromarray(array)


def predictor(mode="letterbox", size=32, names=("background", "red")) -> SegmentationPredictor:
    return SegmentationPredictor(RedIsForeground(), {"mode": mode, "size": size}, IMAGENET_MEAN, IMAGENET_STD,
                                 list(names), CPU)


def run(pred: SegmentationPredictor, image: Image.Image, accept: str) -> bytes:
    return direct.answer(pred, image, accept)


@pytest.mark.parametrize("mode", ["letterbox", "resize"])
def test_png_is_an_indexed_class_mask_at_the_input_size(mode):
    body = run(predictor(mode), half_red(), "image/png")
    mask = Image.open(io.BytesIO(body))
    assert mask.format == "PNG" and mask.mode == "P" and mask.size == (50, 30)
    labels = np.array(mask)
    assert (labels[:, :23] == 1).all() and (labels[:, 27:] == 0).all()


def test_prepare_gives_one_size_for_any_image():
    pred = predictor()
    images = [torch.zeros((3, h, w), dtype=torch.uint8) for w, h in ((50, 30), (17, 90), (32, 32), (7, 7))]
    assert pred.prepare(images).shape == (4, 3, 32, 32)


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return result, pos


def _fields(data: bytes) -> dict[int, list]:
    """A minimal protobuf wire parser written for this test (varint and length-delimited fields only)."""
    out: dict[int, list] = {}
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 2:
            length, pos = _varint(data, pos)
            value, pos = data[pos:pos + length], pos + length
        else:
            raise AssertionError(f"unexpected wire type {wire}")
        out.setdefault(number, []).append(value)
    return out


def _packed_varints(data: bytes) -> list[int]:
    values, pos = [], 0
    while pos < len(data):
        value, pos = _varint(data, pos)
        values.append(value)
    return values


def _unframe(body: bytes) -> bytes:
    magic, lrecord = struct.unpack("<II", body[:8])
    length = lrecord & ((1 << 29) - 1)
    assert magic == 0xCED7230A and lrecord >> 29 == 0 and len(body) == 8 + length + (-length % 4)
    return body[8:8 + length]


@pytest.mark.parametrize("accept", ["application/x-recordio-protobuf", "application/x-protobuf"])
def test_recordio_protobuf_parsed_back_by_hand(accept):
    pred = predictor()
    image = half_red()
    body = run(pred, image, accept)
    record = _fields(_unframe(body))
    features = {}
    for entry in record[1]:  # Record.features map entries
        kv = _fields(entry)
        features[kv[1][0].decode()] = _fields(kv[2][0])  # Value
    shape_tensor = _fields(features["shape"][7][0])  # Value.int32_tensor = 7
    assert _packed_varints(shape_tensor[1][0]) == [1, 2, 30, 50]
    target = _fields(features["target"][2][0])  # Value.float32_tensor = 2
    probs = np.frombuffer(target[1][0], dtype="<f4").reshape(1, 2, 30, 50)
    assert _packed_varints(target[3][0]) == [1, 2, 30, 50]
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert (probs[0, 1, :, :23] > 0.5).all() and (probs[0, 0, :, 27:] > 0.5).all()


def _record_proto_classes():
    """The aialgs.data messages (SageMaker SDK record.proto) built from a descriptor, with the protobuf package."""
    descriptor_pb2 = pytest.importorskip("google.protobuf.descriptor_pb2")
    from google.protobuf import descriptor_pool, message_factory

    fdp = descriptor_pb2.FileDescriptorProto(name="smcv_test_record.proto", package="aialgs.data", syntax="proto2")
    F = descriptor_pb2.FieldDescriptorProto
    for name, kind in (("Float32Tensor", F.TYPE_FLOAT), ("Int32Tensor", F.TYPE_INT32)):
        msg = fdp.message_type.add(name=name)
        msg.field.add(name="values", number=1, type=kind, label=F.LABEL_REPEATED).options.packed = True
        msg.field.add(name="keys", number=2, type=F.TYPE_UINT64, label=F.LABEL_REPEATED).options.packed = True
        msg.field.add(name="shape", number=3, type=F.TYPE_UINT64, label=F.LABEL_REPEATED).options.packed = True
    value = fdp.message_type.add(name="Value")
    value.oneof_decl.add(name="value")
    for name, number, type_name in (("float32_tensor", 2, ".aialgs.data.Float32Tensor"),
                                    ("int32_tensor", 7, ".aialgs.data.Int32Tensor")):
        value.field.add(name=name, number=number, type=F.TYPE_MESSAGE, type_name=type_name,
                        label=F.LABEL_OPTIONAL, oneof_index=0)
    record = fdp.message_type.add(name="Record")
    entry = record.nested_type.add(name="FeaturesEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    entry.field.add(name="value", number=2, type=F.TYPE_MESSAGE, type_name=".aialgs.data.Value", label=F.LABEL_OPTIONAL)
    record.field.add(name="features", number=1, type=F.TYPE_MESSAGE, type_name=".aialgs.data.Record.FeaturesEntry",
                     label=F.LABEL_REPEATED)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("aialgs.data.Record"))


def test_recordio_protobuf_parsed_by_the_protobuf_package():
    Record = _record_proto_classes()
    body = run(predictor(), half_red(), "application/x-recordio-protobuf")
    rec = Record()
    rec.ParseFromString(_unframe(body))
    shape = list(rec.features["shape"].int32_tensor.values)
    probs = np.array(rec.features["target"].float32_tensor.values, dtype=np.float32).reshape(shape)
    assert shape == [1, 2, 30, 50] and probs[0, 1, 0, 0] > 0.5


def test_json_summary():
    body = json.loads(run(predictor(), half_red(), "application/json"))
    assert body["shape"] == [30, 50] and body["classes"] == ["background", "red"]
    assert body["class_counts"]["0"] + body["class_counts"]["1"] == 1500
    assert abs(body["class_counts"]["1"] - 750) <= 60 and "probabilities" not in body


def test_json_probabilities_downscaled_to_64():
    image = half_red(width=200, height=100)
    body = json.loads(run(predictor(), image, "application/json;probabilities=1"))
    assert body["probabilities_shape"] == [2, 32, JSON_PROBABILITY_SIDE]
    probs = np.array(body["probabilities"])
    assert probs.shape == (2, 32, 64) and np.allclose(probs.sum(0), 1.0, atol=1e-3)
    small = json.loads(run(predictor(), half_red(10, 6), "application/json;probabilities=1"))
    assert small["probabilities_shape"] == [2, 6, 10]  # never upscaled


def test_response_types_offer_the_builtin_default_first():
    assert RESPONSE_TYPES[0] == "image/png" and "application/x-recordio-protobuf" in RESPONSE_TYPES


def test_build_predictor_from_manifest_alone():
    manifest = {"task": "segmentation", "architecture": "unet", "encoder_name": "resnet18", "encoder_depth": 3,
                "decoder_channels": [64, 32, 16], "num_classes": 3, "class_names": ["a", "b", "c"],
                "input": {"mode": "letterbox", "size": 32, "divisor": 8},
                "normalization": {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}}
    state = build_network(manifest).state_dict()
    pred = SegmentationTask().build_predictor(json.loads(json.dumps(manifest)), state, CPU)
    images = [Image.new("RGB", (45, 20), (10, 200, 30)), Image.new("RGB", (20, 45))]
    for img, (result, meta) in zip(images, direct.predict(pred, images, "image/png")):
        mask = Image.open(io.BytesIO(pred.encode(result, meta, "image/png")))
        assert mask.size == img.size and int(np.array(mask).max()) < 3


def test_verbose_gives_class_names_pixel_shares_and_the_mask():
    import base64

    body = json.loads(run(predictor(), half_red(50, 30), "application/json;verbose=1"))
    assert body["labels"] == ["background", "red"] and body["shape"] == [30, 50]
    mask = np.array(Image.open(io.BytesIO(base64.b64decode(body["mask_png_base64"]))))
    assert mask.shape == (30, 50)
    red_share = float((mask == 1).mean())
    assert 0.4 < red_share < 0.6
    assert body["class_share"] == {"background": pytest.approx(1 - red_share, abs=1e-6), "red": pytest.approx(red_share, abs=1e-6)}
    assert body["class_pixels"] == {"background": int((mask == 0).sum()), "red": int((mask == 1).sum())}


@pytest.mark.parametrize("mode", ["letterbox", "resize"])
def test_large_request_is_decoded_smaller_but_the_mask_keeps_the_sent_size(mode):
    from smcv.serving.codecs import decode_request_image

    pred = predictor(mode, size=16)
    buffer = io.BytesIO()
    half_red(400, 240).save(buffer, format="PNG")
    image = decode_request_image(buffer.getvalue(), "image/png", reduce_to=pred.input_side)
    assert image.size == (58, 35)  # reduced 7x (rounding up): the shorter side stays at least twice the input side
    mask = Image.open(io.BytesIO(run(pred, image, "image/png")))
    assert mask.size == (400, 240)
    labels = np.array(mask)
    assert (labels[:, :190] == 1).all() and (labels[:, 210:] == 0).all()
