"""``tinygrad_edu.autograd``: the tape, with the names of ``torch.autograd``.

Four files, read in this order:

* ``function.py``: ``Function``, one differentiable op (forward and backward side by side) and its context;
  ``apply`` runs the forward and records the op on the tape;
* ``engine.py``: the backward walk that runs the recorded ops' backward newest first, and grad mode (``no_grad``);
* ``versions.py``: version counters, which make ``backward`` refuse an op whose saved tensor changed in place;
* ``anomaly.py``: ``detect_anomaly()``, which finds the first op that produced NaN or Inf.

The package knows nothing of ``Tensor``'s surface (``tinygrad_edu.tensor`` builds on it), nor of any array library:
ops compute with the namespace of their tensors' backend.
"""

from tinygrad_edu.autograd.anomaly import AnomalyError, detect_anomaly, is_anomaly_enabled, set_detect_anomaly
from tinygrad_edu.autograd.engine import is_grad_enabled, no_grad, queue_callback
from tinygrad_edu.autograd.function import Function, InputError
from tinygrad_edu.autograd.versions import InplaceModificationError

__all__ = ["AnomalyError", "Function", "InplaceModificationError", "InputError", "detect_anomaly",
           "is_anomaly_enabled", "is_grad_enabled", "no_grad", "queue_callback", "set_detect_anomaly"]
