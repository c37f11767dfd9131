import json
import os
import struct
import tempfile
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

from cos_core.trace import FORMAT, StepRecord, Trace, TraceFormatError

SIGMAS = [1.0, 0.95, 0.9, 0.8, 0.6, 0.0]


def same_tensor(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal dtype, shape and bits (NaN-safe)."""
    return (a.dtype == b.dtype and a.shape == b.shape
            and a.reshape(-1).view(torch.uint8).tolist() == b.reshape(-1).view(torch.uint8).tolist())


def assert_same_trace(got: Trace, want: Trace) -> None:
    assert got.meta == want.meta
    assert got.steps == want.steps
    for g, w in zip(got.records(), want.records()):
        assert (g.step, g.sigma, g.stage, g.expert) == (w.step, w.sigma, w.stage, w.expert)
        assert sorted(g.tensors) == sorted(w.tensors)
        for name in w.tensors:
            assert same_tensor(g.tensors[name], w.tensors[name]), (g.step, name)


@pytest.fixture
def trace():
    gen = torch.Generator().manual_seed(0)
    t = Trace({"sigmas": SIGMAS, "total_steps": 5, "latent_format": "Wan21", "switch_step": 2})
    t.add(StepRecord(0, 1.0, 0, "high", {"x0_hat": torch.randn(1, 4, 3, 2, 2, generator=gen),
                                         "energy": torch.rand(3, 5, generator=gen)}))
    t.add(StepRecord(2, 0.9, 1, "low", {"x0_hat": torch.randn(1, 4, 3, 2, 2, generator=gen).half()}))
    t.add(StepRecord(4, 0.6, 1, "low", {"x0_hat": torch.randn(1, 4, 3, 2, 2, generator=gen).bfloat16(),
                                        "x": torch.randn(7, generator=gen).bfloat16()}))
    return t


def test_trace_keeps_records_sorted_by_step(trace):
    assert trace.steps == [0, 2, 4]
    assert len(trace) == 3 and 2 in trace and 1 not in trace
    assert trace[2].expert == "low"
    assert trace.tensor_names() == ["energy", "x", "x0_hat"]


def test_add_replaces_the_record_of_the_same_step(trace):
    trace.add(StepRecord(2, 0.91, 0, "high"))
    assert len(trace) == 3 and trace[2].sigma == 0.91 and trace[2].tensors == {}


def test_save_and_load_round_trip_exactly(trace, tmp_path):
    path = trace.save(tmp_path / "run.safetensors")
    loaded = Trace.load(path)
    assert_same_trace(loaded, trace)
    assert loaded.meta["latent_format"] == "Wan21"
    assert loaded.meta["sigmas"] == SIGMAS
    assert [loaded[s].tensors["x0_hat"].dtype for s in loaded.steps] == [torch.float32, torch.float16,
                                                                         torch.bfloat16]


def test_save_refuses_to_overwrite(trace, tmp_path):
    path = trace.save(tmp_path / "run.safetensors")
    before = path.read_bytes()
    trace.add(StepRecord(9, 0.0))
    with pytest.raises(FileExistsError):
        trace.save(path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["run.safetensors"]


def test_save_overwrites_when_asked(trace, tmp_path):
    path = trace.save(tmp_path / "run.safetensors")
    trace.add(StepRecord(9, 0.0))
    trace.save(path, overwrite=True)
    assert Trace.load(path).steps == [0, 2, 4, 9]


def test_stack_returns_the_steps_and_the_stacked_tensors():
    t = Trace()
    for step in (3, 1, 2):
        t.add(StepRecord(step, 1.0 - step / 10, tensors={"x0_hat": torch.full((2, 3), float(step))}))
    t.add(StepRecord(0, 1.0, tensors={"energy": torch.zeros(1)}))
    steps, stacked = t.stack("x0_hat")
    assert steps == [1, 2, 3]
    assert stacked.shape == (3, 2, 3)
    assert stacked[:, 0, 0].tolist() == [1.0, 2.0, 3.0]


def test_stack_of_a_missing_name_lists_the_available_names(trace):
    with pytest.raises(KeyError) as info:
        trace.stack("attention")
    message = info.value.args[0]
    assert "attention" in message
    for name in ("x0_hat", "energy", "x"):
        assert name in message


def test_stack_of_an_empty_trace_says_none():
    with pytest.raises(KeyError, match="none"):
        Trace().stack("x0_hat")


def test_copy_is_a_separate_snapshot(trace):
    snap = trace.copy()
    trace.add(StepRecord(7, 0.1))
    trace.meta["latent_format"] = "changed"
    trace[0].tensors["new"] = torch.zeros(1)
    assert snap.steps == [0, 2, 4]
    assert snap.meta["latent_format"] == "Wan21"
    assert "new" not in snap[0].tensors


def test_nbytes_counts_every_tensor(trace):
    expected = 48 * 4 + 15 * 4 + 48 * 2 + 48 * 2 + 7 * 2
    assert trace.nbytes() == expected


def test_load_of_a_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        Trace.load(tmp_path / "nope.safetensors")


# ---- corrupt files: always TraceFormatError, never anything else --------------------------

def load_error(path: Path) -> TraceFormatError:
    with pytest.raises(TraceFormatError) as info:
        Trace.load(path)
    return info.value


@pytest.mark.parametrize("seed", range(5))
def test_random_bytes_are_not_a_trace(tmp_path, seed):
    path = tmp_path / "random.safetensors"
    path.write_bytes(torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(seed),
                                   dtype=torch.uint8).numpy().tobytes())
    load_error(path)


def test_random_bytes_behind_a_plausible_header_length_are_not_a_trace(tmp_path):
    path = tmp_path / "random.safetensors"
    body = torch.randint(0, 256, (200,), generator=torch.Generator().manual_seed(1),
                         dtype=torch.uint8).numpy().tobytes()
    path.write_bytes(struct.pack("<Q", 100) + body)
    load_error(path)


@pytest.mark.parametrize("keep", [0, 5, 8, 40, 0.5, -1])
def test_truncated_trace_is_not_a_trace(trace, tmp_path, keep):
    data = trace.save(tmp_path / "run.safetensors").read_bytes()
    n = int(len(data) * keep) if isinstance(keep, float) else (len(data) + keep if keep < 0 else keep)
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(data[:n])
    load_error(cut)


def test_safetensors_without_trace_metadata_is_not_a_trace(tmp_path):
    path = tmp_path / "weights.safetensors"
    save_file({"w": torch.zeros(2, 2)}, str(path), metadata={"format": "pt"})
    assert "not a Chain-of-Steps trace" in str(load_error(path))


def test_safetensors_without_any_metadata_is_not_a_trace(tmp_path):
    path = tmp_path / "weights.safetensors"
    save_file({"w": torch.zeros(2, 2)}, str(path))
    load_error(path)


def test_header_length_of_a_terabyte_is_refused_without_reading_it(tmp_path):
    path = tmp_path / "huge.safetensors"
    path.write_bytes(struct.pack("<Q", 2**40) + b"{}" + b"\0" * 64)
    assert "header" in str(load_error(path))


def crafted(tmp_path: Path, header, tensors=None) -> Path:
    path = tmp_path / "crafted.safetensors"
    raw = header if isinstance(header, str) else json.dumps(header)
    save_file(tensors or {"00000/x0_hat": torch.zeros(1)}, str(path), metadata={"cos_trace": raw})
    return path


@pytest.mark.parametrize("header", [
    "not json",
    "null",
    "[1, 2]",
    {"format": "cos-trace/999", "records": []},
    {"format": FORMAT, "records": [{"step": 0, "sigma": 1.0, "tensors": ["missing"]}]},
    {"format": FORMAT, "records": [{"sigma": 1.0, "tensors": []}]},
    {"format": FORMAT, "records": [{"step": "x", "sigma": 1.0}]},
    {"format": FORMAT, "records": [{"step": 0, "sigma": None}]},
    {"format": FORMAT, "records": 5},
    {"format": FORMAT, "records": [1]},
    {"format": FORMAT, "records": ["step"]},
    {"format": FORMAT, "meta": [1, 2], "records": []},
    "[" * 100_000,
])
def test_malformed_trace_header_is_a_format_error(tmp_path, header):
    load_error(crafted(tmp_path, header))


def test_crafted_header_that_is_well_formed_loads(tmp_path):
    path = crafted(tmp_path, {"format": FORMAT, "meta": {"a": 1},
                              "records": [{"step": 0, "sigma": 0.5, "tensors": ["x0_hat"]}]})
    loaded = Trace.load(path)
    assert loaded.meta == {"a": 1}
    assert loaded[0].stage == 0 and loaded[0].expert == "single"
    assert same_tensor(loaded[0].tensors["x0_hat"], torch.zeros(1))


# ---- property: any small trace round-trips exactly ---------------------------------------

shapes = st.lists(st.integers(min_value=1, max_value=4), min_size=0, max_size=3)
names = st.sampled_from(["x0_hat", "x", "energy", "attn/block10"])


@st.composite
def records(draw):
    steps = draw(st.lists(st.integers(min_value=0, max_value=200), min_size=1, max_size=4, unique=True))
    out = []
    for step in steps:
        tensors = {}
        for name in draw(st.lists(names, min_size=1, max_size=3, unique=True)):
            seed = draw(st.integers(min_value=0, max_value=2**31 - 1))
            tensors[name] = torch.randn(draw(shapes), generator=torch.Generator().manual_seed(seed))
        out.append(StepRecord(step,
                              draw(st.floats(min_value=0.0, max_value=1.0)),
                              draw(st.integers(min_value=0, max_value=3)),
                              draw(st.sampled_from(["high", "low", "single"])),
                              tensors))
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(recs=records(), sigmas=st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=2, max_size=6))
def test_any_small_trace_round_trips_exactly(recs, sigmas):
    trace = Trace({"sigmas": sigmas, "latent_format": "Wan21"})
    for r in recs:
        trace.add(r)
    with tempfile.TemporaryDirectory() as folder:
        loaded = Trace.load(trace.save(Path(folder) / "t.safetensors"))
    assert_same_trace(loaded, trace)


# ---- property: the round trip holds for every dtype, shape, name and metadata a trace may carry --

import math  # noqa: E402

DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int8, torch.int16, torch.int32,
          torch.int64, torch.uint8, torch.bool]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-2**53, max_value=2**53) | st.text(max_size=12)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)


@st.composite
def any_tensor(draw):
    dtype = draw(st.sampled_from(DTYPES))
    shape = draw(st.lists(st.integers(min_value=0, max_value=3), min_size=0, max_size=4))
    gen = torch.Generator().manual_seed(draw(st.integers(min_value=0, max_value=2**31 - 1)))
    values = torch.randn(shape, generator=gen) * 50
    tensor = values > 0 if dtype == torch.bool else values.to(dtype)
    if tensor.ndim >= 2 and draw(st.booleans()):
        tensor = tensor.transpose(0, 1)  # not contiguous: save must still write what it means
    return tensor


@st.composite
def any_records(draw):
    steps = draw(st.lists(st.integers(min_value=-5, max_value=250_000), min_size=0, max_size=4, unique=True))
    out = []
    for step in steps:
        chosen = draw(st.lists(st.one_of(names, st.text(min_size=1, max_size=10)), min_size=0, max_size=3,
                              unique=True))
        out.append(StepRecord(step,
                              draw(st.one_of(st.floats(), st.sampled_from([math.nan, math.inf, 0.0, -0.0]))),
                              draw(st.integers(min_value=0, max_value=9)),
                              draw(st.one_of(st.sampled_from(["high", "low", "single"]), st.text(max_size=10))),
                              {n: draw(any_tensor()) for n in chosen}))
    return out


def assert_same_trace_nan_safe(got: Trace, want: Trace) -> None:
    assert got.meta == want.meta
    assert got.steps == want.steps
    for g, w in zip(got.records(), want.records()):
        assert (g.step, g.stage, g.expert) == (w.step, w.stage, w.expert)
        assert g.sigma == w.sigma or (math.isnan(g.sigma) and math.isnan(w.sigma))
        assert sorted(g.tensors) == sorted(w.tensors)
        for name in w.tensors:
            assert same_tensor(g.tensors[name], w.tensors[name].contiguous()), (g.step, name)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(recs=any_records(), meta=st.dictionaries(st.text(max_size=10), json_values, max_size=5))
def test_any_trace_round_trips_exactly(recs, meta):
    """All dtypes safetensors stores, 0-d and empty tensors, non-contiguous ones, unicode names and
    experts, NaN/inf/-0.0 σ, negative and six-digit steps, any JSON metadata, and the empty trace."""
    trace = Trace(meta)
    for r in recs:
        trace.add(r)
    with tempfile.TemporaryDirectory() as folder:
        loaded = Trace.load(trace.save(Path(folder) / "t.safetensors"))
    assert_same_trace_nan_safe(loaded, trace)


def test_a_trace_survives_a_second_round_trip_unchanged(trace, tmp_path):
    once = Trace.load(trace.save(tmp_path / "a.safetensors"))
    twice_path = once.save(tmp_path / "b.safetensors")
    assert_same_trace(Trace.load(twice_path), trace)
    assert twice_path.read_bytes() == (tmp_path / "a.safetensors").read_bytes()
