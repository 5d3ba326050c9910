"""Weights our own training produced, named as torchvision names its files, and a loopback HTTP server for them."""

from __future__ import annotations

import hashlib
import http.server
import threading
from pathlib import Path

import torch
import torchvision


def trained_resnet_state(arch: str = "resnet18", steps: int = 2, seed: int = 0) -> dict[str, torch.Tensor]:
    """A torchvision ResNet's state_dict after a few SGD steps on generated images (bright vs dark)."""
    torch.manual_seed(seed)
    model = getattr(torchvision.models, arch)(weights=None, num_classes=2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    images = torch.cat([torch.rand(2, 3, 32, 32) * 0.3, 0.7 + torch.rand(2, 3, 32, 32) * 0.3])
    labels = torch.tensor([0, 0, 1, 1])
    model.train()
    for _ in range(steps):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(images), labels).backward()
        optimizer.step()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def save_torchvision_style(state: dict[str, torch.Tensor], folder: Path, arch: str) -> Path:
    """Save a state_dict as torchvision does: <arch>-<first 8 hex digits of its SHA-256>.pth."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f"{arch}.tmp"
    torch.save(state, tmp)
    digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
    return tmp.rename(folder / f"{arch}-{digest[:8]}.pth")


class WeightsServer:
    """Serves the files of `folder` at http://127.0.0.1:PORT/<folder name>/ from a thread; records the paths asked for."""

    def __init__(self, folder: Path):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.requests: list[str] = []
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(folder.parent), **kwargs)

            def do_GET(self):
                server.requests.append(self.path)
                super().do_GET()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """The base URL, as SMCV_WEIGHTS_URL takes it."""
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{self.folder.name}"

    def start(self) -> "WeightsServer":
        self.thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the port (a later download is refused at once)."""
        if self.thread.is_alive():
            self.httpd.shutdown()
            self.thread.join()
        self.httpd.server_close()
