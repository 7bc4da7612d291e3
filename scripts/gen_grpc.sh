#!/usr/bin/env bash
# Regenerate the KServe v2 gRPC Python modules from src/edgedeploy/serving/kserve_v2/grpc_predict_v2.proto
# (needs grpcio-tools from requirements-test.lock). The generated files are checked in, so serving
# needs only grpcio and protobuf at run time; tests/serving/test_grpc.py checks they are current.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
"$PY" -m grpc_tools.protoc -I src --python_out=src --grpc_python_out=src \
  src/edgedeploy/serving/kserve_v2/grpc_predict_v2.proto
