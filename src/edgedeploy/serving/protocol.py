"""The KServe v2 (Open Inference Protocol) tensors: JSON ⇄ numpy, with Triton's binary extension.

A request body is JSON, or JSON followed by raw tensor bytes when the header
``Inference-Header-Content-Length`` gives the JSON part's length and an input carries
``parameters.binary_data_size`` (what ``tritonclient.http`` sends). Outputs come back as JSON
``data`` unless binary is asked for (``parameters.binary_data_output`` on the request, or
``parameters.binary_data`` on an output). Every mistake is a :class:`ProtocolError`: one line
saying what was given and what was expected (HTTP 400).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np

from edgedeploy.errors import UserError

HEADER_LENGTH = "inference-header-content-length"

DATATYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_), "UINT8": np.dtype(np.uint8), "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32), "UINT64": np.dtype(np.uint64), "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16), "INT32": np.dtype(np.int32), "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16), "FP32": np.dtype(np.float32), "FP64": np.dtype(np.float64),
}
_NAMES = {v: k for k, v in DATATYPES.items()}


class ProtocolError(UserError):
    """A request that does not follow the protocol or does not fit the model (HTTP 400)."""


class OutputNotJson(ProtocolError):
    """Outputs that strict JSON cannot carry (NaN, Infinity) were asked for as JSON (HTTP 422)."""


def _no_constants(token: str):
    raise ValueError(f"{token} is not a JSON number (the protocol's JSON is strict; send binary tensors for "
                     "non-finite values)")


def strict_loads(raw: bytes | str, what: str):
    """``json.loads`` that refuses NaN/Infinity tokens; a :class:`ProtocolError` naming ``what`` otherwise."""
    try:
        return json.loads(raw, parse_constant=_no_constants)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"{what} is not valid JSON ({exc})") from None


def datatype(dtype: np.dtype) -> str:
    try:
        return _NAMES[np.dtype(dtype)]
    except KeyError:
        raise ProtocolError(f"dtype {dtype} has no KServe v2 datatype") from None


@dataclass
class InferRequest:
    """A decoded request: input arrays by name, the outputs asked for, whether they go back binary."""

    inputs: dict[str, np.ndarray]
    id: str | None = None
    outputs: list[str] | None = None  # None: all
    binary_outputs: set[str] = field(default_factory=set)
    binary_all: bool = False
    parameters: dict = field(default_factory=dict)


def _obj(value, what: str) -> dict:
    if not isinstance(value, dict):
        raise ProtocolError(f"{what} must be a JSON object, got {type(value).__name__}")
    return value


def decode_request(body: bytes, header_length: int | None = None) -> InferRequest:
    """Parse and validate an inference request body (see the module docstring)."""
    if header_length is not None:
        if not 0 < header_length <= len(body):
            raise ProtocolError(f"Inference-Header-Content-Length {header_length} does not fit a body of {len(body)} bytes")
        head, binary = body[:header_length], memoryview(body)[header_length:]
    else:
        head, binary = body, memoryview(b"")
    req = _obj(strict_loads(head, "the request body"), "the request")
    inputs = req.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise ProtocolError('the request has no "inputs" list; expected at least one input tensor')
    arrays: dict[str, np.ndarray] = {}
    offset = 0
    for i, t in enumerate(inputs):
        t = _obj(t, f"inputs[{i}]")
        name = t.get("name")
        if not isinstance(name, str) or not name:
            raise ProtocolError(f'inputs[{i}] has no "name"')
        if name in arrays:
            raise ProtocolError(f"input {name!r} is given twice")
        shape = t.get("shape")
        if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
            raise ProtocolError(f"input {name!r}: shape {shape!r} is not a list of non-negative integers")
        dt = t.get("datatype")
        if dt not in DATATYPES:
            raise ProtocolError(f"input {name!r}: datatype {dt!r} is not supported; use one of {', '.join(DATATYPES)}")
        dtype, count = DATATYPES[dt], math.prod(shape)
        size = _obj(t.get("parameters") or {}, f"input {name!r} parameters").get("binary_data_size")
        if size is not None:
            if not isinstance(size, int) or size != count * dtype.itemsize:
                raise ProtocolError(f"input {name!r}: binary_data_size {size!r} does not match shape {shape} of {dt} "
                                    f"({count * dtype.itemsize} bytes)")
            if offset + size > len(binary):
                raise ProtocolError(f"input {name!r}: the body holds {len(binary) - offset} binary bytes, {size} expected")
            arr = np.frombuffer(binary[offset:offset + size], dtype=dtype)
            if not arr.flags.aligned:  # the JSON header's length decides the offset: copy to align
                arr = arr.copy()
            offset += size
        else:
            if "data" not in t:
                raise ProtocolError(f'input {name!r} has no "data" (and no binary_data_size)')
            try:
                arr = np.asarray(t["data"], dtype=dtype).reshape(-1)
            except (ValueError, TypeError) as exc:
                raise ProtocolError(f"input {name!r}: data is not a list of {dt} values ({str(exc)[:80]})") from None
            if arr.size != count:
                raise ProtocolError(f"input {name!r}: data has {arr.size} values but shape {shape} needs {count}")
        arrays[name] = arr.reshape(shape)
    if offset != len(binary):
        raise ProtocolError(f"the body has {len(binary) - offset} binary bytes that no input claims")
    outs = req.get("outputs")
    names, binary_outputs = None, set()
    if outs is not None:
        if not isinstance(outs, list):
            raise ProtocolError('"outputs" must be a list of {"name": ...} objects')
        names = []
        for o in outs:
            o = _obj(o, "an outputs entry")
            if not isinstance(o.get("name"), str):
                raise ProtocolError('an outputs entry has no "name"')
            names.append(o["name"])
            if _obj(o.get("parameters") or {}, "output parameters").get("binary_data"):
                binary_outputs.add(o["name"])
    params = _obj(req.get("parameters") or {}, "request parameters")
    rid = req.get("id")
    return InferRequest(arrays, None if rid is None else str(rid), names, binary_outputs,
                        bool(params.get("binary_data_output")), params)


def encode_response(model: str, version: int, req: InferRequest, outputs: dict[str, np.ndarray],
                    parameters: dict | None = None) -> tuple[bytes, dict[str, str]]:
    """Response body and extra headers (``Inference-Header-Content-Length`` when binary)."""
    wanted = req.outputs if req.outputs is not None else list(outputs)
    unknown = [n for n in wanted if n not in outputs]
    if unknown:
        raise ProtocolError(f"output {unknown[0]!r} is not an output of {model}; it has {', '.join(outputs)}")
    tensors, chunks = [], []
    for name in wanted:
        arr = np.ascontiguousarray(outputs[name])
        t = {"name": name, "shape": list(arr.shape), "datatype": datatype(arr.dtype)}
        if req.binary_all or name in req.binary_outputs:
            t["parameters"] = {"binary_data_size": arr.nbytes}
            chunks.append(arr.tobytes())
        else:
            if arr.dtype.kind == "f" and not np.isfinite(arr).all():
                raise OutputNotJson(f"output {name!r} holds NaN or Infinity, which JSON cannot carry; ask for it "
                                    "as binary data (parameters.binary_data_output: true)")
            t["data"] = arr.reshape(-1).tolist()
        tensors.append(t)
    body = {"model_name": model, "model_version": str(version), "outputs": tensors}
    if req.id is not None:
        body["id"] = req.id
    if parameters:
        body["parameters"] = parameters
    head = json.dumps(body, separators=(",", ":"), allow_nan=False).encode()
    if not chunks:
        return head, {"content-type": "application/json"}
    return head + b"".join(chunks), {HEADER_LENGTH: str(len(head)), "content-type": "application/octet-stream"}


def encode_request(inputs: dict[str, np.ndarray], *, binary: bool = False, binary_outputs: bool = False,
                   outputs: list[str] | None = None, id: str | None = None,
                   parameters: dict | None = None) -> tuple[bytes, dict[str, str]]:
    """The client side (tests, the load benchmark, ``ab``): arrays → body and headers."""
    tensors, chunks = [], []
    for name, arr in inputs.items():
        arr = np.ascontiguousarray(arr)
        t = {"name": name, "shape": list(arr.shape), "datatype": datatype(arr.dtype)}
        if binary:
            t["parameters"] = {"binary_data_size": arr.nbytes}
            chunks.append(arr.tobytes())
        else:
            t["data"] = arr.reshape(-1).tolist()
        tensors.append(t)
    body: dict = {"inputs": tensors}
    params = dict(parameters or {})
    if binary_outputs:
        params["binary_data_output"] = True
    if params:
        body["parameters"] = params
    if outputs is not None:
        body["outputs"] = [{"name": n} for n in outputs]
    if id is not None:
        body["id"] = id
    head = json.dumps(body, separators=(",", ":")).encode()
    if not chunks:
        return head, {"content-type": "application/json"}
    return head + b"".join(chunks), {HEADER_LENGTH: str(len(head)), "content-type": "application/octet-stream"}


def decode_response(body: bytes, headers) -> dict[str, np.ndarray]:
    """The client side: a response body → output arrays by name."""
    n = headers.get(HEADER_LENGTH)
    head, binary = (body[:int(n)], memoryview(body)[int(n):]) if n else (body, memoryview(b""))
    res = json.loads(head)
    out, offset = {}, 0
    for t in res["outputs"]:
        dtype = DATATYPES[t["datatype"]]
        size = (t.get("parameters") or {}).get("binary_data_size")
        if size is not None:
            out[t["name"]] = np.frombuffer(binary[offset:offset + size], dtype=dtype).reshape(t["shape"])
            offset += size
        else:
            out[t["name"]] = np.asarray(t["data"], dtype=dtype).reshape(t["shape"])
    return out
