"""The tensors of an Open Inference Protocol request, in JSON or with the binary data extension.

The binary tensor data extension (Triton's, which `tritonclient` uses by default): the body
is a JSON header of `Inference-Header-Content-Length` bytes followed by the raw data of the
inputs that say `parameters.binary_data_size`, in input order. Fixed-size datatypes are
little-endian arrays; `BYTES` elements are each a 4-byte little-endian length and the bytes.
Outputs are sent the same way when the request asks (`parameters.binary_data_output` for
all, an output's `parameters.binary_data` for one).

Every size is checked against the body before anything is allocated: a shape's element
count must fit the bytes that carry it (`[1000000000, 0]` in 76 bytes is a 400, not a
billion empty rows), and element count x datatype size must equal `binary_data_size`.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlci.serve.inputs import BadInput

if TYPE_CHECKING:
    import numpy as np

SIZES = {"BOOL": 1, "UINT8": 1, "UINT16": 2, "UINT32": 4, "UINT64": 8, "INT8": 1,
         "INT16": 2, "INT32": 4, "INT64": 8, "FP16": 2, "FP32": 4, "FP64": 8}
NUMPY = {"BOOL": "?", "UINT8": "u1", "UINT16": "<u2", "UINT32": "<u4", "UINT64": "<u8",
         "INT8": "i1", "INT16": "<i2", "INT32": "<i4", "INT64": "<i8", "FP16": "<f2",
         "FP32": "<f4", "FP64": "<f8"}
DATATYPES = {*SIZES, "BYTES"}
HEADER = "inference-header-content-length"


@dataclass
class Tensor:
    name: str
    shape: list[int]
    datatype: str
    data: Any            # JSON: a flat list; binary: a numpy array, or a list of bytes (BYTES)
    binary: bool = False

    def values(self) -> list[Any]:
        """The elements as JSON would give them (BYTES as text)."""
        if not self.binary:
            return self.data
        if self.datatype == "BYTES":
            try:
                return [b.decode("utf-8") for b in self.data]
            except UnicodeDecodeError:
                raise BadInput(f"input {self.name!r}: BYTES elements are not UTF-8 text") \
                    from None
        return self.data.tolist()


def split(raw: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    """(JSON header, binary data) of a request body."""
    if header_length is None:
        return raw, b""
    try:
        n = int(header_length)
    except ValueError:
        n = -1
    if not 0 < n <= len(raw):
        raise BadInput(f"Inference-Header-Content-Length {header_length[:20]!r} must be a "
                       f"byte count within the body ({len(raw)} bytes)")
    return raw[:n], raw[n:]


def parse_inputs(body: Any, binary: bytes, total: int) -> list[Tensor]:
    """The checked input tensors of a parsed request header; `total` is the body's size."""
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list) \
            or not body["inputs"]:
        raise BadInput("body must be an inference request with a non-empty 'inputs' list")
    _params(body.get("parameters"), "the request")
    view = memoryview(binary)
    offset = 0
    out = []
    for i, t in enumerate(body["inputs"]):
        tensor, used = _input(t, i, view[offset:], total)
        offset += used
        out.append(tensor)
    if offset != len(binary):
        raise BadInput(f"{len(binary) - offset} bytes of binary data belong to no input "
                       "(check each input's binary_data_size)")
    return out


def _params(p: Any, where: str) -> dict[str, Any]:
    if p is None:
        return {}
    if not isinstance(p, dict):
        raise BadInput(f"{where}: 'parameters' must be an object")
    return p


def _input(t: Any, i: int, binary: memoryview, total: int) -> tuple[Tensor, int]:
    if not isinstance(t, dict):
        raise BadInput(f"input {i} must be an object")
    name, shape, dtype = t.get("name"), t.get("shape"), t.get("datatype")
    if not isinstance(name, str) or not name:
        raise BadInput(f"input {i} needs a 'name'")
    if not isinstance(shape, list) or not shape or not all(
            isinstance(d, int) and not isinstance(d, bool) for d in shape):
        raise BadInput(f"input {name!r}: 'shape' must be a list of integers")
    if any(d < 1 for d in shape):
        raise BadInput(f"input {name!r}: shape {shape[:8]} holds no elements")
    if dtype not in DATATYPES:
        raise BadInput(f"input {name!r}: unknown datatype {dtype!r}")
    count = math.prod(shape)
    if count > total:  # every element takes at least one byte of the body
        raise BadInput(f"input {name!r}: shape {shape[:8]} holds {count} values, more than "
                       f"the {total} bytes of the body can carry")
    size = _params(t.get("parameters"), f"input {name!r}").get("binary_data_size")
    if size is None:
        if "data" not in t:
            raise BadInput(f"input {name!r} has neither 'data' nor "
                           "parameters.binary_data_size")
        data = _flatten(t["data"])
        if len(data) != count:
            raise BadInput(f"input {name!r}: shape {shape} holds {count} values, "
                           f"data has {len(data)}")
        _check_type(name, dtype, data)
        return Tensor(name, shape, dtype, data), 0
    if "data" in t:
        raise BadInput(f"input {name!r} has both 'data' and binary_data_size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0 or size > len(binary):
        raise BadInput(f"input {name!r}: binary_data_size {size!r} is beyond the "
                       f"{len(binary)} bytes of binary data left")
    chunk = binary[:size]
    if dtype == "BYTES":
        return Tensor(name, shape, dtype, _elements(name, chunk, count), True), size
    if count * SIZES[dtype] != size:
        raise BadInput(f"input {name!r}: shape {shape} of {dtype} is {count * SIZES[dtype]} "
                       f"bytes, binary_data_size is {size}")
    import numpy as np

    return Tensor(name, shape, dtype, np.frombuffer(chunk, dtype=NUMPY[dtype]), True), size


def _elements(name: str, chunk: memoryview, count: int) -> list[bytes]:
    """`count` BYTES elements (4-byte little-endian length, then the bytes), exactly filling
    the chunk."""
    out: list[bytes] = []
    pos, end = 0, len(chunk)
    while pos < end:
        if len(out) == count or pos + 4 > end:
            break
        (n,) = struct.unpack_from("<I", chunk, pos)
        pos += 4
        if pos + n > end:
            raise BadInput(f"input {name!r}: a BYTES element of {n} bytes runs past its "
                           "binary_data_size")
        out.append(bytes(chunk[pos:pos + n]))
        pos += n
    if len(out) != count or pos != end:
        raise BadInput(f"input {name!r}: binary data holds {len(out)} BYTES elements in "
                       f"{pos} of {end} bytes; the shape says {count}")
    return out


def _flatten(data: Any) -> list[Any]:
    if not isinstance(data, list):
        raise BadInput("a tensor's 'data' must be a list")
    out: list[Any] = []
    stack = [iter(data)]
    while stack:
        for v in stack[-1]:
            if isinstance(v, list):
                stack.append(iter(v))
                break
            out.append(v)
        else:
            stack.pop()
    return out


def _check_type(name: str, dtype: str, data: list[Any]) -> None:
    """Values must match the declared datatype (null is a missing value: an extension)."""
    if dtype == "BYTES":
        ok = all(v is None or isinstance(v, str) for v in data)
    elif dtype == "BOOL":
        ok = all(v is None or isinstance(v, bool) for v in data)
    else:
        ok = all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))
                 for v in data)
        if ok and dtype.startswith(("INT", "UINT")):
            ok = all(v is None or float(v).is_integer() for v in data)
    if not ok:
        raise BadInput(f"input {name!r}: data does not match datatype {dtype}")


# ------------------------------------------------------------------ outputs


def binary_outputs(body: dict[str, Any]) -> tuple[bool, dict[str, bool]]:
    """(all outputs binary by default, per-output choice) as the request asks."""
    default = _params(body.get("parameters"), "the request").get("binary_data_output") is True
    per = {}
    for o in body.get("outputs") or []:
        if isinstance(o, dict) and isinstance(o.get("name"), str):
            b = _params(o.get("parameters"), f"output {o['name']!r}").get("binary_data")
            if isinstance(b, bool):
                per[o["name"]] = b
    return default, per


def encode(values: list[Any], datatype: str) -> bytes:
    """Output data as binary tensor data."""
    import numpy as np

    if datatype == "BYTES":
        parts = []
        for v in values:
            b = ("" if v is None else str(v)).encode("utf-8")
            parts.append(struct.pack("<I", len(b)) + b)
        return b"".join(parts)
    arr: np.ndarray = np.array([math.nan if v is None else v for v in values],
                               dtype=NUMPY[datatype])
    return arr.tobytes()


def body_with_binary(doc: dict[str, Any], blobs: list[bytes]) -> tuple[bytes, int]:
    """A response body: the JSON header, then the outputs' binary data; and the header's
    length (for `Inference-Header-Content-Length`)."""
    head = json.dumps(doc, separators=(",", ":")).encode()
    return head + b"".join(blobs), len(head)
