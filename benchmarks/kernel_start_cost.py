"""Kernel start cost: a kernel ready with the finetune template's modules, started and warmed
up (what a warm spare costs) vs forked from a zygote (transferlab.forked_kernels), in wall
seconds and the kernel's own CPU seconds; and the zygote's one-off cost.

    PYTHONPATH=src .venv/bin/python benchmarks/kernel_start_cost.py
"""

import asyncio
import os
import time
from pathlib import Path

import psutil

from transferlab import forked_kernels
from transferlab.warm_kernels import (
    _HISTORY_ARGUMENT,
    _WARM_UP_CODE,
    ForkedKernelManager,
    SpareKernelManager,
    _reply,
    warm_modules,
)

MODS = warm_modules(Path(str(Path(__file__).resolve().parents[1] / "templates" / "finetune.ipynb")))


async def ready(km, code=None):
    kc = km.client()
    kc.start_channels()
    await kc.wait_for_ready(timeout=120)
    if code:
        await _reply(km, kc, kc.execute(code, silent=True, store_history=False))
    km.stop_clients()


async def main():
    env, cwd = dict(os.environ), os.getcwd()
    t = time.perf_counter()
    z = await forked_kernels.zygote_for(MODS, cwd, env)
    zc = psutil.Process(z.process.pid).cpu_times()
    print(f"zygote ready: {time.perf_counter() - t:.1f} s wall, {zc.user + zc.system:.1f} s CPU")
    for kind in ["cold", "forked", "forked", "forked"]:
        km = (
            SpareKernelManager(kernel_name="python3")
            if kind == "cold"
            else ForkedKernelManager(z, kernel_name="python3")
        )
        t = time.perf_counter()
        await km.start_kernel(extra_arguments=[_HISTORY_ARGUMENT], cwd=cwd, env=env)
        await ready(km, _WARM_UP_CODE.format(names=MODS) if kind == "cold" else None)
        c = psutil.Process(km.provisioner.pid).cpu_times()
        print(
            f"{kind}: ready with modules in {time.perf_counter() - t:.2f} s wall, "
            f"kernel CPU {c.user + c.system:.2f} s"
        )
        await km.shutdown_kernel(now=True)
    forked_kernels.close()


asyncio.run(main())
