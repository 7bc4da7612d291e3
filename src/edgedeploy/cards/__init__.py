"""Model cards: a model's input contract (size, layout, colours, scaling, resize) and its task.

    >>> from edgedeploy import cards
    >>> card = cards.find("net.onnx")            # net.card.yaml beside it, or None
    >>> card = cards.resolve(card, "net.onnx")   # checked against the graph, size filled in
    >>> x = cards.to_tensor(bgr_image, card)     # 1x3xHxW float32
"""

from edgedeploy.cards.io import (CARD_SUFFIX, card_path, check, draft, find, from_zoo, input_shape, load, parse,
                                 resolve)
from edgedeploy.cards.preprocess import map_boxes, resize, to_tensor
from edgedeploy.cards.schema import Color, Layout, ModelCard, OutputFormat, Resize

__all__ = ["CARD_SUFFIX", "map_boxes", "Color", "Layout", "ModelCard", "OutputFormat", "Resize", "card_path", "check", "draft",
           "find", "from_zoo", "input_shape", "load", "parse", "resize", "resolve", "to_tensor"]
