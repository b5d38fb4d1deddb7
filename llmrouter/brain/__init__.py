"""The routing brain: a learned, calibrated estimate of which backend answers a prompt well.

Item-response style: each prompt gets a latent difficulty and a demand vector (maths,
code, reasoning, knowledge, chat) from cheap token features; each backend gets an
ability per demand:
``P(good) = sigmoid(ability + demands·skills - discrimination·difficulty)``.
Importing this package loads numpy only; weights load when a predictor is built.
"""

from .predictor import LearnedPredictor

__all__ = ["LearnedPredictor"]
