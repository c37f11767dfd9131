import os
from pathlib import Path

import pytest

from cos_core.files import atomic_write, next_free_path, safe_subpath, write_new


def writer(text: str):
    def write(tmp: str) -> None:
        Path(tmp).write_text(text)
    return write


def test_atomic_write_writes_the_content(tmp_path):
    path = atomic_write(tmp_path / "out.txt", writer("hello"))
    assert path == tmp_path / "out.txt"
    assert path.read_text() == "hello"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_atomic_write_creates_missing_folders(tmp_path):
    path = atomic_write(tmp_path / "a" / "b" / "out.txt", writer("x"))
    assert path.read_text() == "x"


def test_atomic_write_refuses_to_overwrite_and_keeps_the_old_file(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("original")
    with pytest.raises(FileExistsError):
        atomic_write(target, writer("new"))
    assert target.read_text() == "original"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_atomic_write_overwrites_when_asked(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("original")
    atomic_write(target, writer("new"), overwrite=True)
    assert target.read_text() == "new"
    assert os.listdir(tmp_path) == ["out.txt"]


@pytest.mark.parametrize("error", [OSError("disk full"), RuntimeError("boom"), KeyboardInterrupt()])
def test_failing_writer_leaves_no_file_and_no_temp_file(tmp_path, error):
    def write(tmp: str) -> None:
        Path(tmp).write_text("partial")
        raise error

    with pytest.raises(type(error)):
        atomic_write(tmp_path / "out.txt", write)
    assert os.listdir(tmp_path) == []


def test_failing_overwrite_keeps_the_old_file(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("original")

    def write(tmp: str) -> None:
        Path(tmp).write_text("partial")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, write, overwrite=True)
    assert target.read_text() == "original"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_next_free_path_counts_up_like_comfyui(tmp_path):
    first = next_free_path(tmp_path, "cos", ".png")
    assert first == tmp_path / "cos_00001_.png"
    first.write_bytes(b"")
    assert next_free_path(tmp_path, "cos", ".png") == tmp_path / "cos_00002_.png"


def test_next_free_path_continues_after_the_highest_counter(tmp_path):
    (tmp_path / "cos_00007_.png").write_bytes(b"")
    (tmp_path / "cos_00003_.png").write_bytes(b"")
    (tmp_path / "other_00042_.png").write_bytes(b"")
    (tmp_path / "cos_00099_.json").write_bytes(b"")
    assert next_free_path(tmp_path, "cos", ".png") == tmp_path / "cos_00008_.png"


def test_write_new_writes_numbered_files_without_overwriting(tmp_path):
    a = write_new(tmp_path, "trace", ".safetensors", writer("one"))
    b = write_new(tmp_path, "trace", ".safetensors", writer("two"))
    assert a.name == "trace_00001_.safetensors"
    assert b.name == "trace_00002_.safetensors"
    assert a.read_text() == "one" and b.read_text() == "two"
    assert sorted(os.listdir(tmp_path)) == ["trace_00001_.safetensors", "trace_00002_.safetensors"]


@pytest.mark.parametrize("name", ["../x", "/abs", "a/../b", "", "a//b", "./a", "a/", "..\\x",
                                  "..", "a/.", "-rf", ".hidden", "a\x00b", "a:b"])
def test_safe_subpath_rejects_names_that_escape_or_are_odd(tmp_path, name):
    with pytest.raises(ValueError):
        safe_subpath(tmp_path, name)


@pytest.mark.parametrize("name, parts", [("cos/run1", ("cos", "run1")), ("run 1.v2", ("run 1.v2",)),
                                         ("a\\b", ("a", "b"))])
def test_safe_subpath_accepts_names_inside_the_root(tmp_path, name, parts):
    path = safe_subpath(tmp_path, name)
    assert path == tmp_path.resolve().joinpath(*parts)
    assert tmp_path.resolve() in path.parents


def test_safe_subpath_rejects_a_symlink_that_leads_outside(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(ValueError, match="escapes"):
        safe_subpath(root, "link/x")
