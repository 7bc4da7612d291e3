#!/usr/bin/env bash
# Regenerate the KServe v2 gRPC Python modules from src/edgedeploy/serving/kserve_v2/grpc_predict_v2.proto
# (needs grpcio-tools from requirements-test.lock). The generated files are checked in, so serving
# needs only grpcio and protobuf at run time; tests/serving/test_grpc.py checks they are current.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
"$PY" -m grpc_tools.protoc -I src --python_out=src --grpc_python_out=src \
  src/edgedeploy/serving/kserve_v2/grpc_predict_v2.proto
# A private descriptor pool: Triton's client (tritonclient.grpc) registers the same "inference.*"
# names in the default pool, and both must be importable in one process.
sed -i 's/_descriptor_pool\.Default()\.AddSerializedFile/_descriptor_pool.DescriptorPool().AddSerializedFile/' \
  src/edgedeploy/serving/kserve_v2/grpc_predict_v2_pb2.py
