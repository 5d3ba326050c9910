"""Script mode: run the sagemaker-training toolkit's `train` so that SIGTERM reaches the user's script.

Usage (from containers/entrypoint.sh): python script_mode.py /opt/venv/bin/train [ARGS...]

The toolkit installs no SIGTERM handler and forwards no signal. Run directly under `tini -g`, a `docker stop`
(StopTrainingJob, spot interruption) kills the toolkit at once, PID 1 exits and the user's script dies with
the container before its SIGTERM handler can save anything. Here the toolkit runs in a session of its own,
out of reach of tini's group signal; SIGTERM/SIGINT received by this process are forwarded to the other
processes of the toolkit's process group (the user's script and, e.g., its DataLoader workers), and the
toolkit lives on to see the script exit and report success or failure as usual. Only when the script has
not been started yet does the toolkit itself get the signal. The exit status is the toolkit's.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys


def group_members(pgid: int) -> list[int]:
    """Live process ids in process group `pgid`."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.getpgid(int(entry)) == pgid:
                members.append(int(entry))
        except (ProcessLookupError, PermissionError):
            continue
    return members


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: script_mode.py TOOLKIT_TRAIN [ARGS...]", file=sys.stderr)
        return 2
    toolkit = subprocess.Popen(argv, start_new_session=True)

    def forward(signum: int, _frame: object) -> None:
        targets = [pid for pid in group_members(toolkit.pid) if pid != toolkit.pid] or [toolkit.pid]
        print(f"smcv script mode: forwarding {signal.Signals(signum).name} to the training script "
              f"(pid {' '.join(map(str, targets))})", file=sys.stderr, flush=True)
        for pid in targets:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    code = toolkit.wait()
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
