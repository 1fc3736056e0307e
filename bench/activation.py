"""The policy's tanh against torch's, side by side: the op alone and a 64x64 trunk's update.

torch's CPU tanh kernel is not vectorized; ``roll.policy.Tanh`` computes ``2 sigmoid(2x) - 1`` (and
tanh's backward from its output). One thread, float32, 8192 rows (a minibatch of 256 envs x 128
steps / 4).

    python bench/activation.py

Writes bench/results/activation.{json,md}.
"""

from __future__ import annotations

import datetime
import time

import torch
from torch import nn

from common import machine, write_results
from openclaw_rl.roll.policy import Tanh

ROWS, WIDTH, OBS = 8192, 64, 37


def per_call_ms(fn, repeats: int = 200) -> float:
    for _ in range(5):
        fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats * 1e3


def trunk_update_ms(activation) -> float:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(OBS, WIDTH), activation(), nn.Linear(WIDTH, WIDTH), activation(), nn.Linear(WIDTH, 1))
    optimizer = torch.optim.Adam(net.parameters())
    x = torch.randn(ROWS, OBS)

    def step():
        optimizer.zero_grad()
        net(x).pow(2).mean().backward()
        optimizer.step()
    return per_call_ms(step, 100)


def main() -> None:
    torch.set_num_threads(1)
    x = torch.randn(ROWS, WIDTH)
    ours = Tanh()
    rows = [
        {"what": f"forward, [{ROWS}, {WIDTH}]", "torch": per_call_ms(lambda: torch.tanh(x)), "ours": per_call_ms(lambda: ours(x))},
        {"what": f"forward + backward + Adam, a {OBS}-{WIDTH}-{WIDTH}-1 trunk", "torch": trunk_update_ms(nn.Tanh),
         "ours": trunk_update_ms(Tanh)},
    ]
    for row in rows:
        print(f"{row['what']}: torch.tanh {row['torch']:.3f} ms, ours {row['ours']:.3f} ms", flush=True)
    lines = [
        "# The policy's tanh against torch.tanh (ms per call, one thread)", "",
        f"Measured {datetime.date.today()} on {machine()['cpu']} ({machine()['cores']} cores), torch {torch.__version__}, "
        "by `bench/activation.py`.", "",
        "| what | torch.tanh | policy.Tanh | speed-up |", "|---|---:|---:|---:|",
    ]
    lines += [f"| {r['what']} | {r['torch']:.3f} | {r['ours']:.3f} | {r['torch'] / r['ours']:.1f}x |" for r in rows]
    payload = {"machine": machine(), "date": str(datetime.date.today()), "rows": rows}
    print(f"wrote {write_results('activation', payload, chr(10).join(lines) + chr(10))}")


if __name__ == "__main__":
    main()
