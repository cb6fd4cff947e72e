"""Entries of the dropout family of ``tinygrad_edu.nn.functional``: dropout, dropout2d and DropConnect on a linear
layer, in training mode. ``check_gradients`` reseeds the random generator before every evaluation, so every
pass draws the same masks.
"""

from __future__ import annotations

from tinygrad_edu.nn import functional as F
from tinygrad_edu.testing.registry._core import register
from tinygrad_edu.testing.registry._inputs import _linear_inputs, _one, _uniform

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
