"""edgedeploy: put trained models onto edge devices.

The public entry points:

- :func:`edgedeploy.ingest.load_model` turns a path, a zoo name or a torch module into a model;
- :func:`edgedeploy.engines.load` opens a model on an engine and returns a :class:`Session`;
- :mod:`edgedeploy.inference` is the Paddle-Inference-style Predictor API of the seed;
- :mod:`edgedeploy.zoo` fetches the real models we test and measure on.
"""

__version__ = "0.1.0"
