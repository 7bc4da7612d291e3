"""KServe v2 tensors: JSON and binary round trips, and one-line errors for every malformed request."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgedeploy.serving.protocol import (ProtocolError, decode_request, decode_response, encode_request,
                                          encode_response)


def _body(**inp) -> bytes:
    tensor = {"name": "input", "shape": [2, 2], "datatype": "FP32", "data": [1, 2, 3, 4]}
    tensor.update(inp)
    return json.dumps({"inputs": [tensor]}).encode()


@pytest.mark.parametrize("binary", [False, True])
def test_round_trip(binary):
    arrays = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.array([[1, 2]], dtype=np.int64)}
    body, headers = encode_request(arrays, binary=binary, binary_outputs=binary, id="r1")
    req = decode_request(body, int(headers["inference-header-content-length"]) if binary else None)
    assert req.id == "r1" and req.binary_all == binary
    for k, v in arrays.items():
        np.testing.assert_array_equal(req.inputs[k], v)
        assert req.inputs[k].dtype == v.dtype
    out, out_headers = encode_response("m", 3, req, {"y": arrays["a"] * 2})
    assert ("inference-header-content-length" in out_headers) == binary
    back = decode_response(out, out_headers)
    np.testing.assert_array_equal(back["y"], arrays["a"] * 2)
    assert json.loads(out[:int(out_headers.get("inference-header-content-length", len(out)))])["model_version"] == "3"


def test_nested_json_data_is_accepted():
    req = decode_request(_body(data=[[1, 2], [3, 4]]))
    assert req.inputs["input"].shape == (2, 2)


def test_outputs_can_be_chosen_and_binary_per_output():
    body = json.dumps({"inputs": json.loads(_body())["inputs"],
                       "outputs": [{"name": "y", "parameters": {"binary_data": True}}]}).encode()
    req = decode_request(body)
    out, headers = encode_response("m", 1, req, {"x": np.zeros(2, np.float32), "y": np.ones(2, np.float32)})
    back = decode_response(out, headers)
    assert list(back) == ["y"] and "inference-header-content-length" in headers
    with pytest.raises(ProtocolError, match="output 'z' is not an output of m"):
        encode_response("m", 1, decode_request(json.dumps({"inputs": json.loads(_body())["inputs"],
                                                           "outputs": [{"name": "z"}]}).encode()), {"y": np.ones(1)})


@pytest.mark.parametrize("body, message", [
    (b"{not json", "not valid JSON"),
    (b"[1, 2]", "must be a JSON object"),
    (b'{"inputs": []}', 'no "inputs" list'),
    (_body(shape=[2, -1]), "is not a list of non-negative integers"),
    (_body(shape="2x2"), "is not a list of non-negative integers"),
    (_body(datatype="FLOAT32"), "datatype 'FLOAT32' is not supported"),
    (_body(data=[1, 2, 3]), "data has 3 values but shape \\[2, 2\\] needs 4"),
    (_body(data=["a", "b", "c", "d"]), "data is not a list of FP32 values"),
    (_body(name=""), 'has no "name"'),
    (json.dumps({"inputs": [{"name": "input", "shape": [1], "datatype": "FP32"}]}).encode(), 'has no "data"'),
])
def test_malformed_requests_say_what_is_wrong(body, message):
    with pytest.raises(ProtocolError, match=message):
        decode_request(body)


def test_binary_sizes_are_checked():
    arr = {"input": np.zeros((2, 2), np.float32)}
    body, headers = encode_request(arr, binary=True)
    n = int(headers["inference-header-content-length"])
    with pytest.raises(ProtocolError, match="binary bytes, 16 expected"):
        decode_request(body[:-4], n)
    with pytest.raises(ProtocolError, match="4 binary bytes that no input claims"):
        decode_request(body + b"\0" * 4, n)
    with pytest.raises(ProtocolError, match="does not fit a body"):
        decode_request(body, len(body) + 10)
    head = json.loads(body[:n])
    head["inputs"][0]["parameters"]["binary_data_size"] = 12
    with pytest.raises(ProtocolError, match="binary_data_size 12 does not match shape"):
        decode_request(json.dumps(head).encode() + body[n:], len(json.dumps(head)))
