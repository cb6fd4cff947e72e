"""Draw the tape of one residual block (He et al. 2016): two convolutions with batchnorm, the shortcut, the sum.

    python -m tinygrad_edu.examples.draw_residual_block residual_block.png     # .svg, .png or .dot
"""

from __future__ import annotations

import sys

import tinygrad_edu as tg
from tinygrad_edu import nn, viz


def main(argv: list[str] | None = None) -> int:
    path = (argv if argv is not None else sys.argv[1:] or ["residual_block.png"])[0]
    tg.manual_seed(0)
    block = nn.ResidualBlock(8, 8)  # conv-BN-ReLU-conv-BN, plus the input, then ReLU
    loss = block(tg.randn(4, 8, 6, 6)).sum()
    viz.draw(loss, block).render(path)  # before backward: backward frees the tape
    print(f"drew the residual block's tape to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
