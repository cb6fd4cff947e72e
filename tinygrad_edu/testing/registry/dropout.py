"""Entries of the dropout family of ``tinygrad_edu.nn.functional``: dropout, dropout2d, DropConnect on a linear
layer and swapout, in training mode (and swapout's deterministic inference). ``check_gradients`` reseeds the random
generator before every evaluation, so every pass draws the same masks.
"""

from __future__ import annotations

from tinygrad_edu.nn import functional as F
from tinygrad_edu.testing.registry._core import register
from tinygrad_edu.testing.registry._inputs import _linear_inputs, _one, _pair, _uniform

register(
    "dropout",
    lambda x: (F.dropout(x, 0.3), F.dropout(x, 0.5, training=True)),
    _one(_uniform),
    (F.DropoutFunction,),
    "training mode, p = 0.3 and 0.5; masks held fixed by reseeding before every evaluation",
)
register(
    "dropout2d",
    lambda x: (F.dropout2d(x, 0.3), F.dropout2d(x, 0.5)),
    _one(_uniform, min_dims=3, max_dims=4),
    (F.Dropout2dFunction,),
    "x (N, C, L) or (N, C, H, W), training mode, p = 0.3 and 0.5; one mask per channel, held fixed by reseeding",
)
register(
    "dropconnect_linear",
    lambda x, w, b: (F.dropconnect_linear(x, w, b, p=0.3), F.dropconnect_linear(x, w, p=0.5)),
    _linear_inputs(True),
    (F.DropConnectLinearFunction,),
    "x of shape (in,), (n, in) or (n, m, in), training mode; with bias p = 0.3, without p = 0.5; weight masks "
    "held fixed by reseeding",
)
register(
    "swapout",
    lambda x, fx: (F.swapout(x, fx, 0.5, 0.7), F.swapout(x, fx, 0.0, 0.6), F.swapout(x, fx, 1.0, 0.5, per="sample"),
                   F.swapout(x, fx, 0.7, 0.4, per="batch")),
    _pair(),
    (F.SwapoutFunction,),
    "x and F(x) a broadcasting pair, training mode: per unit θ = (0.5, 0.7), dropout's case (0, 0.6), per sample "
    "(1, 0.5) (stochastic depth), per batch (0.7, 0.4); masks held fixed by reseeding",
)
register(
    "swapout_eval",
    lambda x, fx: (F.swapout(x, fx, 0.6, 0.8, training=False), F.swapout(x, fx, 1.0, 1.0)),
    _pair(),
    (F.SwapoutFunction,),
    "x and F(x) a broadcasting pair: deterministic inference θ1·x + θ2·F(x) with θ = (0.6, 0.8), and the residual "
    "sum x + F(x) (θ = (1, 1), nothing drawn)",
)
