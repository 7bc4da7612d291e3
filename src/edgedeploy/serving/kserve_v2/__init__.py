"""KServe v2 gRPC stubs generated from ``grpc_predict_v2.proto`` (scripts/gen_grpc.sh); do not edit them."""
