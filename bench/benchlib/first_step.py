"""`python -m benchlib.first_step`: smcv.train as `python -m smcv.train` runs it, plus one stdout line
`bench-first-step` when the first optimizer step has finished (a global optimizer step hook)."""

from __future__ import annotations

import runpy
import sys

MARKER = "bench-first-step"


def install() -> None:
    """Print MARKER once, after the first optimizer step of this process (device work finished)."""
    import torch
    from torch.optim.optimizer import register_optimizer_step_post_hook

    def hook(_optimizer, _args, _kwargs) -> None:
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.synchronize()
        print(MARKER, flush=True)
        handle.remove()

    handle = register_optimizer_step_post_hook(hook)


if __name__ == "__main__":
    install()
    sys.argv = ["smcv.train"]
    runpy.run_module("smcv.train", run_name="__main__", alter_sys=True)
