"""Accuracy of a model or pipeline against ground truth: see :mod:`edgedeploy.evaluation.metrics`."""
