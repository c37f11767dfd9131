"""Untrusted files: a trace file is data from anywhere, an output name is text from anywhere.

Trace loading reads safetensors and bounded JSON only, never pickle: a corrupted or hostile file
(a pickle or ``torch.save`` file renamed ``.safetensors``, a huge header, bad JSON, unknown dtype
names, shapes that overflow, offsets past the end, tensor names that do not match the records)
gives one clear error, ``TraceFormatError``. Output names (``filename_prefix``) and CoS Load
Trace's ``path`` cannot leave ComfyUI's output folder: no ``..``, no absolute paths, no symlink
out, no symlink loop.

Tier 0 (plain ``cos_core``) runs anywhere; the tier-2 part at the end goes through a real ComfyUI
server (one for the module, always stopped; skipped when COMFYUI_PATH is unset).
"""
from __future__ import annotations

import json
import os
import pickle
import struct
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

from cos_core.files import safe_subpath
from cos_core.trace import FORMAT, MAX_HEADER_BYTES, StepRecord, Trace, TraceFormatError

MARKER = "cos_untrusted_pwned"


class Payload:
    """Unpickling this runs a command that leaves a marker file: the proof nobody unpickled."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def valid_trace() -> Trace:
    gen = torch.Generator().manual_seed(3)
    trace = Trace({"sigmas": [1.0, 0.5, 0.0], "total_steps": 2, "latent_format": "Wan21", "seed": 7})
    trace.add(StepRecord(0, 1.0, 0, "high", {"x0_hat": torch.randn(1, 4, 2, 2, 2, generator=gen),
                                             "energy/L00/cond": torch.rand(1, 2, 2, 2, generator=gen)}))
    trace.add(StepRecord(1, 0.5, 1, "low", {"x0_hat": torch.randn(1, 4, 2, 2, 2, generator=gen).half()}))
    return trace


def raw_safetensors(path: Path, entries: dict, header_meta: dict | None = None, body: bytes = b"") -> Path:
    """A safetensors file written by hand, so its header can lie."""
    header = dict(entries)
    if header_meta is not None:
        header["__metadata__"] = header_meta
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + body)
    return path


def one_record_meta(names=("x0_hat",), step=0) -> dict:
    return {"cos_trace": json.dumps({"format": FORMAT, "meta": {},
                                     "records": [{"step": step, "sigma": 1.0, "tensors": list(names)}]})}


def hostile_files(folder: Path, marker: Path) -> dict[str, Path]:
    """Every kind of bad trace file the tests throw at the loader, by name."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    files["pickle renamed"] = folder / "pickle.safetensors"
    files["pickle renamed"].write_bytes(pickle.dumps(Payload(marker)))
    files["torch.save renamed"] = folder / "torchsave.safetensors"
    torch.save({"x0_hat": torch.zeros(2), "payload": Payload(marker)}, files["torch.save renamed"])
    files["huge header length"] = folder / "huge.safetensors"
    files["huge header length"].write_bytes(struct.pack("<Q", 2**40) + b"{}" + b"\0" * 64)
    files["header just over the limit"] = folder / "overlimit.safetensors"
    with open(files["header just over the limit"], "wb") as fh:  # a sparse file as long as the claim
        fh.write(struct.pack("<Q", MAX_HEADER_BYTES + 1))
        fh.truncate(MAX_HEADER_BYTES + 64)
    files["bad JSON"] = folder / "badjson.safetensors"
    save_file({"00000/x0_hat": torch.zeros(1)}, str(files["bad JSON"]), metadata={"cos_trace": "{not json"})
    files["JSON nesting bomb"] = folder / "nesting.safetensors"
    save_file({"00000/x0_hat": torch.zeros(1)}, str(files["JSON nesting bomb"]),
              metadata={"cos_trace": '{"a":' * 200_000})
    files["unknown dtype name"] = raw_safetensors(folder / "dtype.safetensors", {
        "00000/x0_hat": {"dtype": "F99", "shape": [1], "data_offsets": [0, 4]}}, one_record_meta(), b"\0" * 8)
    files["dtype 'PICKLE'"] = raw_safetensors(folder / "dtype_pickle.safetensors", {
        "00000/x0_hat": {"dtype": "PICKLE", "shape": [1], "data_offsets": [0, 4]}}, one_record_meta(), b"\0" * 8)
    files["shape that overflows"] = raw_safetensors(folder / "overflow.safetensors", {
        "00000/x0_hat": {"dtype": "F32", "shape": [0, 2**63 - 1, 2], "data_offsets": [0, 0]}}, one_record_meta())
    files["offsets past the end"] = raw_safetensors(folder / "offsets.safetensors", {
        "00000/x0_hat": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, one_record_meta(), b"\0" * 8)
    files["size does not match the shape"] = raw_safetensors(folder / "size.safetensors", {
        "00000/x0_hat": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, one_record_meta(), b"\0" * 8)
    files["records name missing tensors"] = folder / "names.safetensors"
    save_file({"00000/other": torch.zeros(1)}, str(files["records name missing tensors"]), metadata=one_record_meta())
    files["record of another step"] = folder / "step.safetensors"
    save_file({"00000/x0_hat": torch.zeros(1)}, str(files["record of another step"]),
              metadata=one_record_meta(step=3))
    files["no trace metadata (plain weights)"] = folder / "weights.safetensors"
    save_file({"w": torch.zeros(2)}, str(files["no trace metadata (plain weights)"]))
    files["empty file"] = folder / "empty.safetensors"
    files["empty file"].write_bytes(b"")
    return files


# ---------------------------------------------------------------------------------------------
# tier 0: the loader
# ---------------------------------------------------------------------------------------------

@pytest.fixture
def no_unpickling(monkeypatch):
    """Any unpickling during the test fails it loudly."""
    def refuse(*args, **kwargs):
        raise AssertionError("the trace loader unpickled something")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    monkeypatch.setattr(torch, "load", refuse)


HOSTILE = ["pickle renamed", "torch.save renamed", "huge header length", "header just over the limit", "bad JSON",
           "JSON nesting bomb", "unknown dtype name", "dtype 'PICKLE'", "shape that overflows", "offsets past the end",
           "size does not match the shape", "records name missing tensors", "record of another step",
           "no trace metadata (plain weights)", "empty file"]


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_trace_file_gives_one_clear_error(tmp_path, no_unpickling, case):
    marker = tmp_path / MARKER
    path = hostile_files(tmp_path / "files", marker)[case]
    with pytest.raises(TraceFormatError) as caught:
        Trace.load(path)
    message = str(caught.value)
    assert message.startswith(path.name + ":"), message
    assert len(message) < 600, "the error should be short enough to read in ComfyUI's dialog"
    assert not marker.exists(), "the payload ran: something unpickled the file"


def test_a_valid_trace_loads_without_unpickling(tmp_path, no_unpickling):
    trace = valid_trace()
    loaded = Trace.load(trace.save(tmp_path / "ok.safetensors"))
    assert loaded.steps == [0, 1] and loaded.meta == trace.meta
    assert loaded[1].tensors["x0_hat"].dtype == torch.float16


def test_extra_tensors_that_no_record_names_are_ignored(tmp_path):
    path = tmp_path / "extra.safetensors"
    save_file({"00000/x0_hat": torch.zeros(1), "zz/unrelated": torch.ones(3)}, str(path), metadata=one_record_meta())
    loaded = Trace.load(path)
    assert loaded.steps == [0] and list(loaded[0].tensors) == ["x0_hat"]


@pytest.fixture(scope="module")
def valid_bytes(tmp_path_factory) -> bytes:
    return valid_trace().save(tmp_path_factory.mktemp("valid") / "t.safetensors").read_bytes()


def load_or_format_error(path: Path):
    try:
        return Trace.load(path)
    except TraceFormatError:
        return None


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(edits=st.lists(st.tuples(st.sampled_from(["set", "delete", "insert"]), st.integers(0, 10**6),
                                st.binary(min_size=1, max_size=8)), min_size=1, max_size=4),
       cut=st.one_of(st.none(), st.integers(0, 10**6)))
def test_any_corruption_of_a_trace_file_loads_or_raises_trace_format_error(tmp_path, valid_bytes, edits, cut):
    data = bytearray(valid_bytes)
    for op, where, blob in edits:
        at = where % len(data)
        if op == "set":
            data[at:at + len(blob)] = blob
        elif op == "delete":
            del data[at:at + len(blob)]
        else:
            data[at:at] = blob
    if cut is not None:
        data = data[:cut % (len(data) + 1)]
    path = tmp_path / "fuzz.safetensors"
    path.write_bytes(bytes(data))
    load_or_format_error(path)  # anything else (RuntimeError, a Rust panic, ...) fails the test


def _header_and_body(data: bytes) -> tuple[dict, bytes]:
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8:8 + n]), data[8 + n:]


LIES = st.one_of(st.integers(-2, 64), st.integers(2**31 - 2, 2**31 + 2), st.integers(2**62, 2**64 + 1),
                 st.sampled_from([None, "1", 1.5, [], {}]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_lie_in_the_safetensors_header_raises_trace_format_error_or_loads(tmp_path, valid_bytes, data):
    header, body = _header_and_body(valid_bytes)
    name = data.draw(st.sampled_from(sorted(k for k in header if k != "__metadata__")))
    entry = header[name]
    field = data.draw(st.sampled_from(["dtype", "shape", "data_offsets", "drop", "records"]))
    if field == "dtype":
        entry["dtype"] = data.draw(st.sampled_from(["F32", "F16", "BF16", "BOOL", "U8", "I64", "F64", "F8_E4M3",
                                                    "F99", "", "PICKLE", "O"]))
    elif field == "shape":
        entry["shape"] = data.draw(st.lists(LIES, max_size=4))
    elif field == "data_offsets":
        entry["data_offsets"] = data.draw(st.lists(LIES, min_size=0, max_size=3))
    elif field == "drop":
        del header[name]
    else:
        meta = json.loads(header["__metadata__"]["cos_trace"])
        record = data.draw(st.sampled_from(meta["records"]))
        record[data.draw(st.sampled_from(["step", "sigma", "stage", "expert", "tensors"]))] = data.draw(LIES)
        header["__metadata__"]["cos_trace"] = json.dumps(meta)
    raw = json.dumps(header).encode()
    path = tmp_path / "lie.safetensors"
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + body)
    load_or_format_error(path)


# ---------------------------------------------------------------------------------------------
# tier 0: output names
# ---------------------------------------------------------------------------------------------

@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.one_of(st.text(max_size=40), st.text(alphabet="ab./\\~:- ", max_size=20)))
def test_any_output_name_stays_inside_the_root_or_is_refused(tmp_path, name):
    root = tmp_path / "output"
    root.mkdir(exist_ok=True)
    try:
        path = safe_subpath(root, name)
    except ValueError:
        return
    assert path == root.resolve() or root.resolve() in path.parents


@pytest.fixture
def output_with_links(tmp_path):
    root, outside = tmp_path / "output", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.safetensors").write_bytes(b"x")
    (root / "dir_link").symlink_to(outside, target_is_directory=True)
    (root / "file_link.safetensors").symlink_to(outside / "secret.safetensors")
    (root / "loop_a").symlink_to(root / "loop_b")
    (root / "loop_b").symlink_to(root / "loop_a")
    (root / "inner").mkdir()
    (root / "inner_link").symlink_to(root / "inner", target_is_directory=True)
    return root


@pytest.mark.parametrize("name", ["dir_link/x", "dir_link", "file_link.safetensors", "loop_a/x", "loop_b"])
def test_symlinks_out_of_the_output_folder_or_in_a_loop_are_refused(output_with_links, name):
    with pytest.raises(ValueError):
        safe_subpath(output_with_links, name)


def test_a_symlink_that_stays_inside_is_fine(output_with_links):
    assert safe_subpath(output_with_links, "inner_link/x") == output_with_links.resolve() / "inner" / "x"


# ---------------------------------------------------------------------------------------------
# tier 2: the same through a real ComfyUI server
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from tier2_support import module_server

    yield from module_server(tmp_path_factory)


@pytest.fixture(scope="module")
def planted(server, tmp_path_factory):
    """Hostile files and links planted in the server's output folder; an 'outside' folder beside it."""
    outside = tmp_path_factory.mktemp("outside")
    save_file({"00000/x0_hat": torch.zeros(1, 16, 1, 2, 2)}, str(outside / "real.safetensors"),
              metadata=one_record_meta())
    out = server.output_dir
    files = hostile_files(out / "hostile", outside / MARKER)
    os.mkfifo(out / "hostile" / "fifo.safetensors")
    (out / "hostile" / "dir.safetensors").mkdir()
    (out / "links").mkdir()
    (out / "links" / "out").symlink_to(outside, target_is_directory=True)
    (out / "links" / "file.safetensors").symlink_to(outside / "real.safetensors")
    (out / "links" / "loop_a").symlink_to(out / "links" / "loop_b")
    (out / "links" / "loop_b").symlink_to(out / "links" / "loop_a")
    return {"outside": outside, "files": {k: p.relative_to(out).as_posix() for k, p in files.items()}}


def load_trace_prompt(path: str):
    from tier2_support import Graph

    g = Graph()
    loaded = g.node("CoSLoadTrace", path=path)
    decode = g.node("CoSDecodeSteps", trace=loaded, mode="latent2rgb (fast)", layout="grid: steps × frames",
                    steps="all", frames=0, step=-1, batch_index=0)
    g.node("PreviewImage", images=decode)
    return g, loaded


def refused(client, g, node, name, or_prefix=None):
    """The prompt is refused at validation or fails, naming ``name`` (or starting with ``or_prefix``,
    e.g. the file's name); returns the message."""
    from tier2_support import names_input, node_error_text, post_prompt, validation_names_input, wait_all

    status, body = post_prompt(client, g.prompt)
    if status == 400:
        assert validation_names_input(body, node, name), node_error_text(body, node)
        return node_error_text(body, node)
    (history,) = wait_all(client, [body["prompt_id"]]).values()
    errors = [data for kind, data in history["status"]["messages"] if kind == "execution_error"]
    assert errors, f"the prompt ran: {history['status']}"
    message = errors[0]["exception_message"]
    assert errors[0]["node_id"] == node.id, errors[0]
    assert names_input(message, name) or (or_prefix and message.startswith(or_prefix)), message
    return message


@pytest.mark.server
@pytest.mark.parametrize("case", HOSTILE + ["fifo", "directory"])
def test_load_trace_of_a_hostile_file_fails_clearly(client, planted, case):
    path = {"fifo": "hostile/fifo.safetensors", "directory": "hostile/dir.safetensors"}.get(case) \
        or planted["files"][case]
    g, loaded = load_trace_prompt(path)
    message = refused(client, g, loaded, "path", or_prefix=Path(path).name + ":")  # TraceFormatError names the file
    assert "Traceback" not in message
    assert not (planted["outside"] / MARKER).exists(), "the payload ran inside the server"


@pytest.mark.server
@pytest.mark.parametrize("path", ["../x.safetensors", "/etc/passwd", "", "links/out/real.safetensors",
                                  "links/file.safetensors", "links/loop_a/x.safetensors", "a/../../x.safetensors"])
def test_load_trace_path_cannot_leave_the_output_folder(client, planted, path):
    g, loaded = load_trace_prompt(path)
    refused(client, g, loaded, "path")


PREFIXES = ["../x", "/cos_untrusted_abs/x", "a/../../x", "~/x", "C:\\x", "a\\..\\..\\x", "links/out/x", "links/out",
            "links/loop_a/x"]


@pytest.mark.server
@pytest.mark.parametrize("writer", ["CoSSaveTrace", "CoSSaveStepVideos", "CoSInformationFlow"])
@pytest.mark.parametrize("prefix", PREFIXES)
def test_output_names_cannot_leave_the_output_folder(client, server, planted, writer, prefix):
    from tier2_support import Graph, conditioning, sampler_inputs, video_latent, wan_model

    g = Graph()
    model = wan_model(g)
    pos, neg = conditioning(g)
    latent = video_latent(g)
    if writer == "CoSInformationFlow":
        values = sampler_inputs(seed=2)
        for name in ("capture_steps", "stop_after_step", "preview_frames"):
            values.pop(name)
        node = g.node(writer, model_high=model, positive=pos, negative=neg, latent=latent, **values, mode="step",
                      injections="1", strength=1.0, noise_seed=0, filename_prefix=prefix)
    else:
        sampler = g.node("CoSSampler", model_high=model, positive=pos, negative=neg, latent=latent,
                         **sampler_inputs(seed=2))
        extra = {"mode": "latent2rgb (fast)", "steps": "all", "fps": 8.0} if writer == "CoSSaveStepVideos" else {}
        node = g.node(writer, trace=sampler.out(2), filename_prefix=prefix, **extra)
    refused(client, g, node, "filename_prefix")
    assert sorted(p.name for p in planted["outside"].iterdir()) == ["real.safetensors"], "a file landed outside"
    assert not Path("/cos_untrusted_abs").exists() and not (server.output_dir.parent / "x").exists()


@pytest.mark.server
def test_server_still_serves_after_the_untrusted_inputs(client, planted, tmp_path):
    from tier2_support import Graph, fetch_trace, succeeded, t2v_run

    g = Graph()
    sampler, *_ = t2v_run(g, seed=99)
    save = g.node("CoSSaveTrace", trace=sampler.out(2), filename_prefix="links/inside/trace")
    trace = fetch_trace(client, succeeded(client, g.prompt), save, tmp_path)
    assert trace.meta["seed"] == 99
