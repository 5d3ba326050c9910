"""torchrun command for multi-host jobs, from resourceconfig.json."""

import json

from smcv.contract import Paths
from smcv.engine import launch


class FakeChild:
    def __init__(self, command):
        self.command = command

    def wait(self):
        return 0


def test_second_host_joins_the_first_as_master(tmp_path, monkeypatch):
    config = tmp_path / "input" / "config"
    config.mkdir(parents=True)
    (config / "resourceconfig.json").write_text(json.dumps(
        {"current_host": "algo-2", "hosts": ["algo-2", "algo-1"], "network_interface_name": "eth1"}))
    started = []
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    monkeypatch.setattr(launch, "wait_for_hosts", lambda hosts: None)
    monkeypatch.setattr(launch.subprocess, "Popen", lambda cmd: started.append(cmd) or FakeChild(cmd))
    monkeypatch.setattr(launch.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(launch.torch.cuda, "device_count", lambda: 4)
    monkeypatch.delenv("NCCL_SOCKET_IFNAME", raising=False)  # the launcher sets both: restored after the test
    monkeypatch.delenv("GLOO_SOCKET_IFNAME", raising=False)
    assert launch.maybe_relaunch(Paths(tmp_path)) == 0
    command = started[0]
    assert "--nnodes=2" in command and "--nproc_per_node=4" in command and "--node_rank=1" in command
    assert "--master_addr=algo-1" in command and command[-2:] == ["-m", "smcv.train"]
    assert launch.os.environ["NCCL_SOCKET_IFNAME"] == "eth1"


def test_single_process_runs_in_place(tmp_path, monkeypatch):
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    monkeypatch.delenv("SMCV_NPROC_PER_NODE", raising=False)
    monkeypatch.setattr(launch.torch.cuda, "is_available", lambda: False)
    assert launch.maybe_relaunch(Paths(tmp_path)) is None
