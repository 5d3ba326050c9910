"""The built-in's probability response: a SageMaker `Record` protobuf (aialgs.data, record.proto in the SageMaker
Python SDK) written by hand, wrapped in one MXNet RecordIO record.

Wire layout used: Record{map<string, Value> features = 1}; Value{Float32Tensor float32_tensor = 2;
Int32Tensor int32_tensor = 7}; Float32Tensor/Int32Tensor{repeated values = 1 [packed]; repeated uint64 shape = 3 [packed]}.
"""

from __future__ import annotations

import struct
from typing import Iterable

import numpy as np

from smcv.data.recordio import MAGIC, split_payload

_LENGTH_DELIMITED = 2


def varint(value: int) -> bytes:
    """Base-128 varint; negative numbers as 64-bit two's complement, as protobuf encodes int32."""
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field: key, length, bytes."""
    return varint(number << 3 | _LENGTH_DELIMITED) + varint(len(payload)) + payload


def _packed_varints(values: Iterable[int]) -> bytes:
    return b"".join(varint(int(v)) for v in values)


def float32_tensor(values: np.ndarray, shape: Iterable[int]) -> bytes:
    """A Value holding a dense Float32Tensor."""
    tensor = _field(1, np.ascontiguousarray(values, dtype="<f4").tobytes()) + _field(3, _packed_varints(shape))
    return _field(2, tensor)


def int32_tensor(values: Iterable[int], shape: Iterable[int]) -> bytes:
    """A Value holding a dense Int32Tensor."""
    tensor = _field(1, _packed_varints(values)) + _field(3, _packed_varints(shape))
    return _field(7, tensor)


def record(features: dict[str, bytes]) -> bytes:
    """A Record whose `features` map holds the given encoded Values."""
    entries = (_field(1, _field(1, name.encode()) + _field(2, value)) for name, value in features.items())
    return b"".join(entries)


def recordio_frame(payload: bytes) -> bytes:
    """One MXNet RecordIO record (split at aligned magic words as dmlc-core does), padded to 4 bytes."""
    out = bytearray()
    for cflag, part in split_payload(payload):
        out += struct.pack("<II", MAGIC, cflag << 29 | len(part)) + part
        out += b"\0" * ((4 - len(part) % 4) % 4)
    return bytes(out)


def probabilities_response(probs: np.ndarray) -> bytes:
    """The built-in's response for class probabilities probs (C, H, W): features shape=[1, C, H, W], target=probs."""
    channels, height, width = probs.shape
    shape = [1, channels, height, width]
    message = record({"shape": int32_tensor(shape, [4]), "target": float32_tensor(probs.ravel(), shape)})
    return recordio_frame(message)
