"""The image's supply chain: hash-pinned lock files, a digest-pinned base, pip --require-hashes in the Dockerfile."""

from __future__ import annotations

import importlib.util
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONTAINERS = ROOT / "containers"


def _lock_module():
    spec = importlib.util.spec_from_file_location("lock_requirements", CONTAINERS / "lock_requirements.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


lock = _lock_module()


def _requirements(path: Path) -> dict[str, list[str]]:
    """name==version -> its sha256 hashes, from a lock file with backslash continuations."""
    pins: dict[str, list[str]] = {}
    current = None
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("--hash=sha256:"):
            assert current, f"{path.name}: a hash line before any pin"
            pins[current].append(stripped.split(":", 1)[1].rstrip(" \\"))
            continue
        match = lock.PIN.match(line)
        assert match, f"{path.name}: not an exact pin: {line!r}"
        current = f"{match.group(1)}=={match.group(2)}"
        pins[current] = []
    return pins


@pytest.mark.parametrize("name", lock.LOCK_FILES)
def test_every_pin_of_the_image_carries_sha256_hashes(name):
    pins = _requirements(CONTAINERS / name)
    assert pins, f"{name} holds no pins"
    for pin, hashes in pins.items():
        assert hashes, f"{name}: {pin} has no --hash (run python containers/lock_requirements.py)"
        assert all(re.fullmatch(r"[0-9a-f]{64}", h) for h in hashes), f"{name}: {pin} has a malformed hash"


@pytest.mark.parametrize("line", sorted(lock.TORCH_LOCKS))
def test_each_cuda_line_pins_a_matched_torch_pair_inside_pyprojects_range(line):
    from packaging.specifiers import SpecifierSet

    pins = dict(p.split("==") for p in _requirements(CONTAINERS / lock.TORCH_LOCKS[line]))
    torch_minor = int(pins["torch"].split(".")[1])
    assert pins["torchvision"].startswith(f"0.{torch_minor + 15}."), \
        f"torch {pins['torch']} and torchvision {pins['torchvision']} are not a released pair"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for package in ("torch", "torchvision"):
        declared = [d for d in project if re.match(rf"{package}\s*[=<>~!]", d)]
        assert len(declared) == 1, f"pyproject must declare {package} once"
        assert pins[package] in SpecifierSet(declared[0][len(package):]), f"{package}=={pins[package]} outside {declared[0]}"


@pytest.mark.parametrize("line", sorted(lock.TORCH_LOCKS))
def test_each_cuda_line_carries_only_its_own_cuda_wheels(line):
    names = {p.split("==")[0].lower() for p in _requirements(CONTAINERS / lock.TORCH_LOCKS[line])}
    other = {12: 13, 13: 12}[line]
    assert not {n for n in names if n.endswith(f"-cu{other}")}, f"cu{other} wheels in the CUDA {line} lock"
    bindings = dict(p.split("==") for p in _requirements(CONTAINERS / lock.TORCH_LOCKS[line]))["cuda-bindings"]
    assert bindings.split(".")[0] == str(line)


def test_the_two_cuda_lines_share_the_pins_that_are_not_cuda_specific():
    def general(line: int) -> set[str]:
        pins = _requirements(CONTAINERS / lock.TORCH_LOCKS[line])
        return {p for p in pins if not re.match(r"(torch|torchvision|triton|cuda-|nvidia-)", p.lower())}

    assert general(12) == general(13)


@pytest.mark.parametrize("line", sorted(lock.TORCH_LOCKS))
def test_the_sdist_pins_are_not_installed_with_the_wheels(line):
    wheels = set(_requirements(CONTAINERS / "requirements.txt")) | set(_requirements(CONTAINERS / lock.TORCH_LOCKS[line]))
    sdists = set(_requirements(CONTAINERS / "requirements-sdist.txt"))
    assert sdists and not wheels & sdists


def test_the_dockerfile_installs_every_requirement_file_with_require_hashes():
    text = (CONTAINERS / "Dockerfile").read_text().replace("\\\n", " ")
    for command in re.findall(r"pip (?:install|wheel)[^;]*", text):
        if " -r " in command:
            assert "--require-hashes" in command, f"unhashed install in the Dockerfile: {command.strip()}"
    assert "--use-pep517" not in text, "build isolation would fetch unpinned build backends"


def test_the_default_base_image_is_pinned_by_digest():
    default = re.search(r"^ARG BASE_IMAGE=(\S+)$", (CONTAINERS / "Dockerfile").read_text(), re.M)
    assert default and re.fullmatch(r"[\w./:-]+@sha256:[0-9a-f]{64}", default.group(1)), default


SIMPLE_PAGE = """<html><body>
<a href="../../f/torch-2.14.1-cp311-cp311-manylinux_2_28_x86_64.whl#sha256=AA11">x</a>
<a href="../../f/torch-2.14.1-cp312-cp312-manylinux_2_28_x86_64.whl#sha256=bb22">x</a>
<a href="../../f/torch-2.14.1-cp311-cp311-manylinux_2_28_aarch64.whl#sha256=cc33">x</a>
<a href="../../f/torch-2.14.1-cp311-none-macosx_11_0_arm64.whl#sha256=dd44">x</a>
<a href="../../f/torch-2.13.0-cp311-cp311-manylinux_2_28_x86_64.whl#sha256=ee55">x</a>
<a href="../../f/torch-2.14.1.tar.gz#sha256=ff66">x</a>
<a href="../../f/torch-2.14.1-cp311-cp311-manylinux_2_39_x86_64.whl#sha256=ab77">x</a>
</body></html>"""


def test_only_the_files_the_image_can_install_are_hashed():
    files = lock.parse_simple_page(SIMPLE_PAGE)
    chosen = sorted(d for f, d in files if lock.fits_image(f, "torch", "2.14.1"))
    # cp311 manylinux_2_28 x86_64 and the sdist; not cp312, aarch64, macOS, another version or glibc 2.39 > bookworm
    assert chosen == ["aa11", "ff66"]


@pytest.mark.parametrize("filename, fits", [
    ("six-1.17.0-py2.py3-none-any.whl", True),
    ("cryptography-50.0.2-cp37-abi3-manylinux_2_34_x86_64.whl", True),
    ("cryptography-50.0.2-cp312-abi3-manylinux_2_34_x86_64.whl", False),
    ("PyYAML-6.0.3-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl", True),
    ("zope.interface-8.7-cp311-cp311-manylinux1_x86_64.whl", True),
    ("python_dateutil-2.9.0.post0-py2.py3-none-any.whl", True),
])
def test_wheel_tags_are_matched_to_cpython_311_manylinux_x86_64(filename, fits):
    name, version = filename.split("-")[:2]
    assert lock.fits_image(filename, name, version) is fits


def test_locking_drops_old_hashes_and_writes_fresh_ones_under_each_pin():
    before = ["# comment", "torch==2.14.1 \\", "    --hash=sha256:old", "numpy==2.4.6", ""]
    after = lock.lock_lines(before, lambda name, version: [f"{name}1", f"{name}2"])
    assert after == ["# comment", "torch==2.14.1 \\", "    --hash=sha256:torch1 \\", "    --hash=sha256:torch2",
                     "numpy==2.4.6 \\", "    --hash=sha256:numpy1 \\", "    --hash=sha256:numpy2", ""]
    assert lock.lock_lines(after, lambda name, version: [f"{name}1", f"{name}2"]) == after
