"""A multi-node gang: one process per node meets the others through ``torch.distributed``
(gloo, over TCP) at the rendezvous suanli gives every node, and they all-reduce a tensor.

suanli sets ``MASTER_ADDR``, ``MASTER_PORT``, ``RANK`` (the node's rank), ``WORLD_SIZE`` (the
number of nodes) and the stack's visible-devices variable on each node; a real job would start
one worker per device from here (``torchrun --nnodes $NNODES --node-rank $NODE_RANK ...``).

    gang: 2x8, entrypoint: python examples/gang_allreduce.py
"""

from __future__ import annotations

import os
from datetime import timedelta

import torch
import torch.distributed as dist


def main() -> int:
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']}",
        rank=rank,
        world_size=world,
        timeout=timedelta(seconds=60),
    )
    t = torch.tensor([float(rank + 1)])
    dist.all_reduce(t)
    print(
        f"rank {rank}/{world} on {os.environ.get('SUANLI_NODE')}: sum of ranks+1 = {t.item():g}",
        flush=True,
    )
    dist.destroy_process_group()
    return 0 if t.item() == world * (world + 1) / 2 else 1


if __name__ == "__main__":
    raise SystemExit(main())
