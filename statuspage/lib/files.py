"""Writing files that other processes read while they are replaced (snapshots, the public
generation, the reports chart)."""

import os
import tempfile
from pathlib import Path

# A file being written is named so, beside where it will be: pruning the snapshots' files
# tree (another rebuild, another worker process, the follower) leaves it alone until it is
# old enough that only one left behind by a crash gets to be.
TEMP_PREFIX = ".beacon-writing-"


def atomic_write(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Write `data` to `path` so that a reader sees the old file or the new one, never half
    of one; readable by other users (nginx's workers serve some of these files) unless
    `mode` says otherwise (a secret: 0o600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=TEMP_PREFIX, delete=False) as handle:
        handle.write(data)
    try:
        os.chmod(handle.name, mode)
        os.replace(handle.name, path)
    except OSError:
        Path(handle.name).unlink(missing_ok=True)
        raise
