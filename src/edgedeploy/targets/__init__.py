"""Target artefacts: what each edge box runs, produced and checked as far as this machine can.

- :mod:`emulation` — run an artefact on aarch64 under qemu (the arm64 root of ``setup.sh --arm64``).
- :mod:`tensorrt` — Jetson: QDQ ONNX + TensorRT build settings + calibration cache.
- :mod:`rknn` — RK3588 NPU: ``.rknn`` through RKNN-Toolkit2 in its own venv (``setup.sh --rknn``).
- :mod:`build` — :func:`build_artifacts`, the one call ``deploy`` makes.
"""
