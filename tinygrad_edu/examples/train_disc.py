"""Train a small MLP on the 2-D "disc" problem and print its loss: the engine end to end in one screen.

    python -m tinygrad_edu.examples.train_disc            # on the default device (TINYGRAD_EDU_DEVICE, else cpu)
    python -m tinygrad_edu.examples.train_disc --device strict --epochs 5
"""

from __future__ import annotations

import argparse
import time

import tinygrad_edu as tg
from tinygrad_edu import Tensor, nn, optim
from tinygrad_edu.datasets import disc
from tinygrad_edu.nn import functional as F


def accuracy(model: nn.Module, x: Tensor, y: Tensor) -> float:
    with tg.no_grad():
        predicted = model(x).numpy().argmax(axis=1)
    return float((predicted == y.numpy()).mean())


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: the default device)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    tg.manual_seed(args.seed)
    device = args.device or tg.get_default_device()
    x_train, y_train = (Tensor(a, device=device) for a in disc(1000, seed=args.seed))
    x_test, y_test = (Tensor(a, device=device) for a in disc(1000, seed=args.seed + 1))

    model = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 2)).to(device)
    optimizer = optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)

    start = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        total = 0.0
        for first in range(0, len(x_train), args.batch_size):
            xb = x_train[first : first + args.batch_size]
            yb = y_train[first : first + args.batch_size]
            loss = F.cross_entropy(model(xb), yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(xb)
        if epoch == 1 or epoch % 5 == 0 or epoch == args.epochs:
            print(f"epoch {epoch:3d}  loss {total / len(x_train):.4f}")
    test_accuracy = accuracy(model, x_test, y_test)
    print(
        f"device {device}: train accuracy {accuracy(model, x_train, y_train):.3f}, "
        f"test accuracy {test_accuracy:.3f} ({time.perf_counter() - start:.1f} s)"
    )
    return test_accuracy


if __name__ == "__main__":
    main()
