"""Target artefacts: what each edge box runs, produced and checked as far as this machine can.

- :mod:`build` — :func:`~edgedeploy.targets.build.build_artifacts`, the one call ``deploy`` makes.
- :mod:`emulation` — run an ONNX/ncnn artefact on aarch64 under qemu (the arm64 root of ``setup.sh --arm64``).
- :mod:`tensorrt` — Jetson: QDQ ONNX + TensorRT build settings + calibration table (``trt_build.py`` ships with it).
- :mod:`rknn` — RK3588 NPU: ``.rknn`` through RKNN-Toolkit2 in its own venv (``setup.sh --rknn``).
- :mod:`worker` / :mod:`wire` — a Session whose model runs in another interpreter, and the versioned
  format spoken with it (``arm_worker.py`` and ``rknn_worker.py`` are those interpreters' scripts).
"""
