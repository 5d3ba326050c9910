"""Delete the files of a wheelhouse that no given lock file pins, so a wheelhouse kept between builds stays small.

Usage: python containers/prune_wheelhouse.py DIR LOCK [LOCK ...]

A wheel or sdist is kept when its project name and version match a `name==version` pin of one of the LOCK files
(the other CUDA line's wheels, or those of an older pin, are deleted). Files that are neither wheels nor sdists
are left alone. Prints what it deleted and how much space that freed.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Iterable, Optional

from lock_requirements import PIN, normalize

#: sdist file names: name-version.tar.gz (the name may hold dashes; the version never does)
_SDIST = re.compile(r"^(?P<name>.+)-(?P<version>[^-]+)\.(?:tar\.gz|zip)$")


def pinned(lock_files: Iterable[Path]) -> set[tuple[str, str]]:
    """The (normalised name, version) pairs the lock files pin."""
    pins = set()
    for lock in lock_files:
        for line in lock.read_text().splitlines():
            match = PIN.match(line.strip())
            if match:
                pins.add((normalize(match.group(1)), match.group(2)))
    return pins


def distribution_of(filename: str) -> Optional[tuple[str, str]]:
    """(normalised name, version) of a wheel or sdist file name; None for any other file."""
    if filename.endswith(".whl"):
        parts = filename[:-4].split("-")
        return (normalize(parts[0]), parts[1]) if len(parts) >= 5 else None
    match = _SDIST.match(filename)
    return (normalize(match.group("name")), match.group("version")) if match else None


def prune(directory: Path, lock_files: Iterable[Path]) -> list[Path]:
    """Delete the wheels and sdists in `directory` that no lock pins; return the deleted paths."""
    keep = pinned(lock_files)
    deleted = []
    for path in sorted(directory.iterdir()):
        dist = distribution_of(path.name)
        if path.is_file() and dist is not None and dist not in keep:
            path.unlink()
            deleted.append(path)
    return deleted


def main(argv: Optional[list[str]] = None) -> int:
    """Command line: prune DIR against the LOCK files."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    directory, locks = Path(args[0]), [Path(a) for a in args[1:]]
    if not directory.is_dir():
        return 0
    sizes = {p: p.stat().st_size for p in directory.iterdir() if p.is_file()}
    deleted = prune(directory, locks)
    freed = sum(sizes.get(p, 0) for p in deleted)
    print(f"wheelhouse {directory}: deleted {len(deleted)} file(s) no lock pins, {freed / 1e9:.1f} GB freed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
