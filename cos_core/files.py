"""Writing outputs without losing anything: atomic writes that never overwrite a user's file."""
from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._ -]*$")


def safe_subpath(root: str | os.PathLike, relative: str) -> Path:
    """Join a user-given relative name to ``root`` and refuse anything that escapes it.

    Args:
        root: the folder outputs must stay in (e.g. ComfyUI's output directory).
        relative: a prefix such as ``"cos/run1"``; forward slashes make subfolders.

    Returns:
        The resolved path inside ``root``.

    Raises:
        ValueError: for absolute paths, ``..`` parts, empty parts or odd characters.
    """
    parts = [p for p in relative.replace("\\", "/").split("/")]
    if not relative or relative.startswith("/") or any(not p or p in (".", "..") or not _SAFE_NAME.match(p)
                                                        for p in parts):
        raise ValueError(f"output name '{relative}' is not allowed: use letters, digits, '._- ' and '/' "
                         "for subfolders, with no '..' and no leading '/'")
    try:
        root_path = Path(root).resolve()
        path = (root_path / Path(*parts)).resolve()
    except (RuntimeError, OSError) as err:  # a symlink loop
        raise ValueError(f"output name '{relative}' cannot be resolved ({err})") from err
    if root_path != path and root_path not in path.parents:
        raise ValueError(f"output name '{relative}' escapes the output folder")
    return path


def atomic_write(path: str | os.PathLike, write: Callable[[str], None], overwrite: bool = False) -> Path:
    """Write a file through ``write(tmp_path)`` and move it into place in one step.

    The temporary file lives in the target folder, is fsynced, and is renamed (``overwrite=True``)
    or hard-linked (``overwrite=False``, so an existing file is never replaced, even by a racing
    writer). On any error, including KeyboardInterrupt, the temporary file is removed and no
    partial file is left.

    Raises:
        FileExistsError: when ``overwrite`` is False and ``path`` exists.
        OSError: from the writer or the file system (e.g. a full disk).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise
            except OSError:  # file systems without hard links
                if path.exists():
                    raise FileExistsError(path)
                os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def next_free_path(folder: str | os.PathLike, prefix: str, suffix: str) -> Path:
    """``folder/prefix_00001_.suffix`` with the first counter not yet taken (ComfyUI's naming)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    pattern = re.compile(re.escape(prefix) + r"_(\d{5})_" + re.escape(suffix) + "$")
    used = [int(m.group(1)) for p in folder.iterdir() if (m := pattern.match(p.name))]
    return folder / f"{prefix}_{max(used, default=0) + 1:05d}_{suffix}"


def write_new(folder: str | os.PathLike, prefix: str, suffix: str, write: Callable[[str], None]) -> Path:
    """Atomically write a new file named like :func:`next_free_path`, retrying if a name is taken."""
    for _ in range(100):
        try:
            return atomic_write(next_free_path(folder, prefix, suffix), write, overwrite=False)
        except FileExistsError:
            continue
    raise FileExistsError(f"could not find a free name for {prefix}*{suffix} in {folder}")
