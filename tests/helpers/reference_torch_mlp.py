"""Reference timing for the backprop baseline: the same MLP in PyTorch on the CPU (not a dependency).

784-1000-500-10, ReLU, biases, Glorot-uniform weights, Adam(1e-3), batch 100, float32, squared error,
2 threads. Prints the seconds of each fine-tuning epoch over MNIST's 60,000 training images, and
the test error after the last. Run it in a scratch environment with torch installed:
    python tests/reference_torch_mlp.py --epochs 3
"""

import argparse
import gzip
import os
import time

import numpy as np


def read_idx(path):
    op = gzip.open if path.endswith(".gz") else open
    with op(path, "rb") as f:
        buf = f.read()
    ndim = buf[3]
    shape = tuple(int.from_bytes(buf[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(buf, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def main():
    import torch

    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--loss", choices=["mse", "xent"], default="mse")
    ap.add_argument("--data", default=os.path.join(os.environ.get("NMFDNN_DATA", os.path.expanduser("~/.cache/nmfdnn")), "mnist"))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    X = torch.tensor(read_idx(f"{a.data}/train-images-idx3-ubyte").reshape(60000, -1) / 255.0, dtype=torch.float32)
    y = torch.tensor(read_idx(f"{a.data}/train-labels-idx1-ubyte").astype(np.int64))
    Xt = torch.tensor(read_idx(f"{a.data}/t10k-images-idx3-ubyte").reshape(10000, -1) / 255.0, dtype=torch.float32)
    yt = torch.tensor(read_idx(f"{a.data}/t10k-labels-idx1-ubyte").astype(np.int64))
    Y = torch.nn.functional.one_hot(y, 10).float()
    net = torch.nn.Sequential(torch.nn.Linear(784, 1000), torch.nn.ReLU(), torch.nn.Linear(1000, 500), torch.nn.ReLU(),
                              torch.nn.Linear(500, 10))
    for m in net:
        if isinstance(m, torch.nn.Linear):
            torch.nn.init.xavier_uniform_(m.weight)
            torch.nn.init.zeros_(m.bias)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
    for epoch in range(a.epochs):
        perm = torch.randperm(60000)
        t0 = time.perf_counter()
        for s in range(0, 60000, 100):
            J = perm[s:s + 100]
            out = net(X[J])
            if a.loss == "mse":
                loss = 0.5 * ((out - Y[J]) ** 2).sum() / J.numel()
            else:
                loss = torch.nn.functional.cross_entropy(out, y[J])
            opt.zero_grad()
            loss.backward()
            opt.step()
        dt = time.perf_counter() - t0
        with torch.no_grad():
            err = (net(Xt).argmax(1) != yt).float().mean().item() * 100
        print(f"epoch {epoch + 1}: {dt:.2f} s, test error {err:.2f} %", flush=True)


if __name__ == "__main__":
    main()
