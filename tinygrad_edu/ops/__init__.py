"""The primitive differentiable ops, one ``Function`` subclass each (forward and backward side by side)."""

from tinygrad_edu.ops.arithmetic import Add, Div, Mul, Neg, Pow, Sub
from tinygrad_edu.ops.broadcast import accumulating_sum, unbroadcast
from tinygrad_edu.ops.conversion import Cast, ToDevice
from tinygrad_edu.ops.elementwise import Abs, Clip, Exp, Log, Maximum, Minimum, Relu, Sigmoid, Sqrt, Tanh, Where
from tinygrad_edu.ops.matmul import MatMul
from tinygrad_edu.ops.movement import Concatenate, Expand, GetItem, Pad, Permute, Reshape
from tinygrad_edu.ops.reduce import Max, Mean, Min, Sum, Var

__all__ = [
    "Abs", "Add", "Cast", "Clip", "Concatenate", "Div", "Exp", "Expand", "GetItem", "Log", "MatMul", "Max",
    "Maximum", "Mean", "Min", "Minimum", "Mul", "Neg", "Pad", "Permute", "Pow", "Relu", "Reshape", "Sigmoid",
    "Sqrt", "Sub", "Sum", "Tanh", "ToDevice", "Var", "Where", "accumulating_sum", "unbroadcast",
]
