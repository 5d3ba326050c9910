"""Multi-GPU and multi-host: re-run the algorithm under torchrun with one process per GPU on every host."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
from typing import Optional

import torch

from smcv.contract import ENV_MASTER_PORT, ENV_NO_LAUNCH, ENV_NPROC_PER_NODE, Paths, read_resource_config
from smcv.errors import ConfigError
from smcv.threads import export_threads

log = logging.getLogger(__name__)
HOST_WAIT_SECONDS = 300


def wait_for_hosts(hosts: tuple[str, ...], timeout: float = HOST_WAIT_SECONDS) -> None:
    """SageMaker's DNS for peer hosts can lag: retry resolution for a while before giving up."""
    deadline = time.monotonic() + timeout
    for host in hosts:
        while True:
            try:
                socket.gethostbyname(host)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise ConfigError(f"host {host} from resourceconfig.json does not resolve after {timeout:.0f} s") from None
                time.sleep(2)


def maybe_relaunch(paths: Paths) -> Optional[int]:
    """Exit code of a torchrun child group when this job needs several processes, else None (run in-process)."""
    if "LOCAL_RANK" in os.environ or os.environ.get(ENV_NO_LAUNCH) == "1":
        return None
    resources = read_resource_config(paths)
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    nproc = int(os.environ.get(ENV_NPROC_PER_NODE) or max(gpus, 1))
    if nproc == 1 and resources.num_hosts == 1:
        return None
    if resources.num_hosts > 1:
        wait_for_hosts(resources.hosts)
        os.environ.setdefault("NCCL_SOCKET_IFNAME", resources.network_interface_name)
        os.environ.setdefault("GLOO_SOCKET_IFNAME", resources.network_interface_name)
    master = resources.hosts[0] if resources.num_hosts > 1 else "127.0.0.1"
    command = [sys.executable, "-m", "torch.distributed.run", f"--nnodes={resources.num_hosts}",
               f"--nproc_per_node={nproc}", f"--node_rank={resources.host_rank}", f"--master_addr={master}",
               f"--master_port={os.environ.get(ENV_MASTER_PORT, '29500')}", "-m", "smcv.train"]
    export_threads(nproc, "training process")  # before torchrun, which would otherwise force 1 thread each
    log.info("starting %d process(es) per host on %d host(s): %s", nproc, resources.num_hosts, " ".join(command))
    child = subprocess.Popen(command)
    try:
        return child.wait()
    except KeyboardInterrupt:
        child.terminate()
        return child.wait()
