"""The KServe v2 gRPC service (``inference.GRPCInferenceService``) over a :class:`ModelServer`.

Stubs are generated from ``kserve_v2/grpc_predict_v2.proto`` (``scripts/gen_grpc.sh``). Inputs
come as ``raw_input_contents`` (what ``tritonclient.grpc`` sends) or typed ``contents``; outputs
go back as ``raw_output_contents``, so NaN and Infinity travel unchanged. The same tokens as
HTTP apply (``authorization: Bearer TOKEN`` metadata); the management API is HTTP-only. Errors
map to gRPC status codes (400 → INVALID_ARGUMENT, 404 → NOT_FOUND, 503 → UNAVAILABLE, ...).
"""

from __future__ import annotations

import logging
import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import grpc
import numpy as np

from edgedeploy import __version__
from edgedeploy.serving.auth import INFERENCE, bearer, check
from edgedeploy.serving.kserve_v2 import grpc_predict_v2_pb2 as pb
from edgedeploy.serving.kserve_v2 import grpc_predict_v2_pb2_grpc as pb_grpc
from edgedeploy.serving.model_server import ModelServer, status_of
from edgedeploy.serving.protocol import DATATYPES, ProtocolError, datatype
from edgedeploy.serving.repository import parse_version

log = logging.getLogger(__name__)

_CODES = {400: grpc.StatusCode.INVALID_ARGUMENT, 401: grpc.StatusCode.UNAUTHENTICATED,
          403: grpc.StatusCode.PERMISSION_DENIED, 404: grpc.StatusCode.NOT_FOUND,
          408: grpc.StatusCode.DEADLINE_EXCEEDED, 413: grpc.StatusCode.RESOURCE_EXHAUSTED,
          422: grpc.StatusCode.FAILED_PRECONDITION, 503: grpc.StatusCode.UNAVAILABLE,
          504: grpc.StatusCode.DEADLINE_EXCEEDED, 507: grpc.StatusCode.RESOURCE_EXHAUSTED}
# the typed contents field for each datatype (FP16 has none: raw only)
_CONTENTS = {"BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents",
             "INT64": "int64_contents", "UINT8": "uint_contents", "UINT16": "uint_contents",
             "UINT32": "uint_contents", "UINT64": "uint64_contents", "FP32": "fp32_contents",
             "FP64": "fp64_contents"}


def _version(text: str) -> int | None:
    return parse_version(text) if text else None


def _inputs(request: pb.ModelInferRequest) -> dict[str, np.ndarray]:
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise ProtocolError(f"{len(raw)} raw_input_contents for {len(request.inputs)} inputs; give one per input")
    arrays = {}
    for i, t in enumerate(request.inputs):
        if t.datatype not in DATATYPES:
            raise ProtocolError(f"input {t.name!r}: datatype {t.datatype!r} is not supported; use one of "
                                f"{', '.join(DATATYPES)}")
        if t.name in arrays:
            raise ProtocolError(f"input {t.name!r} is given twice")
        dtype, shape = DATATYPES[t.datatype], list(t.shape)
        if any(d < 0 for d in shape):
            raise ProtocolError(f"input {t.name!r}: shape {shape} has a negative dimension")
        count = math.prod(shape)
        if raw:
            if len(raw[i]) != count * dtype.itemsize:
                raise ProtocolError(f"input {t.name!r}: {len(raw[i])} raw bytes, shape {shape} of {t.datatype} needs "
                                    f"{count * dtype.itemsize}")
            arr = np.frombuffer(raw[i], dtype=dtype)
        else:
            field = _CONTENTS.get(t.datatype)
            if field is None:
                raise ProtocolError(f"input {t.name!r}: {t.datatype} must be sent as raw_input_contents")
            arr = np.asarray(getattr(t.contents, field), dtype=dtype)
            if arr.size != count:
                raise ProtocolError(f"input {t.name!r}: {arr.size} values but shape {shape} needs {count}")
        arrays[t.name] = arr.reshape(shape)
    if not arrays:
        raise ProtocolError("the request has no inputs; expected at least one input tensor")
    return arrays


class _Service(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, server: ModelServer):
        self.server = server

    def _call(self, context, fn, *args):
        """Check the caller's token, run ``fn``, and turn any failure into a gRPC status."""
        s = self.server.settings
        token = bearer(dict(context.invocation_metadata()).get("authorization"))
        refused = check(INFERENCE, token, management=s.management, inference_token=s.inference_token,
                        management_token=s.management_token)
        if refused is not None:
            context.abort(_CODES[refused[0]], refused[1])
        try:
            return fn(*args)
        except Exception as exc:
            status = status_of(exc)
            if status == 500:
                log.error("internal error in gRPC %s", getattr(fn, "__name__", fn), exc_info=exc)
            context.abort(_CODES.get(status, grpc.StatusCode.INTERNAL),
                          str(exc).splitlines()[0] if str(exc) else type(exc).__name__)

    def ServerLive(self, request, context):
        return pb.ServerLiveResponse(live=True)

    def ServerReady(self, request, context):
        return pb.ServerReadyResponse(ready=True)

    def ModelReady(self, request, context):
        def ready():
            mv = self.server.repo.version(request.name, _version(request.version), verify=False)
            return pb.ModelReadyResponse(ready=not self.server.serving.blocked(request.name, mv.version))
        return self._call(context, ready)

    def ServerMetadata(self, request, context):
        return self._call(context, lambda: pb.ServerMetadataResponse(
            name="edgedeploy", version=__version__, extensions=["binary_tensor_data", "statistics"]))

    def ModelMetadata(self, request, context):
        def meta():
            m = self.server.metadata(request.name, _version(request.version))
            tensors = [[pb.ModelMetadataResponse.TensorMetadata(**t) for t in m[k]] for k in ("inputs", "outputs")]
            return pb.ModelMetadataResponse(name=m["name"], versions=m["versions"], platform=m["platform"],
                                            inputs=tensors[0], outputs=tensors[1])
        return self._call(context, meta)

    def ModelInfer(self, request, context):
        arrived = time.perf_counter()

        def infer():
            inputs = _inputs(request)
            params = {k: getattr(v, v.WhichOneof("parameter_choice")) for k, v in request.parameters.items()
                      if v.WhichOneof("parameter_choice")}
            key = dict(context.invocation_metadata()).get("x-ab-key")
            outputs, v, variant = self.server.run(request.model_name, _version(request.model_version), inputs, key,
                                                  arrived, parameters=params)
            wanted = [o.name for o in request.outputs] or list(outputs)
            unknown = [n for n in wanted if n not in outputs]
            if unknown:
                raise ProtocolError(f"output {unknown[0]!r} is not an output of {request.model_name}; "
                                    f"it has {', '.join(outputs)}")
            res = pb.ModelInferResponse(model_name=request.model_name, model_version=str(v), id=request.id)
            if variant:
                res.parameters["ab_variant"].string_param = variant
            for n in wanted:
                arr = np.ascontiguousarray(outputs[n])
                res.outputs.add(name=n, datatype=datatype(arr.dtype), shape=list(arr.shape))
                res.raw_output_contents.append(arr.tobytes())
            return res
        return self._call(context, infer)


@dataclass
class GrpcServer:
    server: grpc.Server
    port: int

    def stop(self, grace_s: float) -> None:
        self.server.stop(grace_s).wait(grace_s + 1)


def start_grpc(model_server: ModelServer, *, host: str = "127.0.0.1", port: int = 8001, tls=None,
               workers: int = 16) -> GrpcServer:
    """Start the gRPC service on ``host:port`` (0: any free port) in its own thread pool. At most
    ``max_inflight`` calls at once (more get RESOURCE_EXHAUSTED); messages up to ``max_body_bytes``."""
    s = model_server.settings
    limit = s.max_body_bytes
    server = grpc.server(ThreadPoolExecutor(max_workers=workers, thread_name_prefix="grpc"),
                         maximum_concurrent_rpcs=s.max_inflight,
                         options=[("grpc.max_receive_message_length", limit),
                                  ("grpc.max_send_message_length", max(limit, 64 << 20))])
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(_Service(model_server), server)
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if tls is not None:
        ca = tls.client_ca.read_bytes() if tls.client_ca else None
        creds = grpc.ssl_server_credentials([(tls.keyfile.read_bytes(), tls.certfile.read_bytes())],
                                            root_certificates=ca, require_client_auth=ca is not None)
        bound = server.add_secure_port(address, creds)
    else:
        bound = server.add_insecure_port(address)
    server.start()
    log.info("KServe v2 gRPC on %s:%d", host, bound)
    return GrpcServer(server, bound)
