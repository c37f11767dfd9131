import pytest
from hypothesis import given
from hypothesis import strategies as st

from cos_core.steps import SpecError, format_spec, parse_spec


def test_all_picks_every_index():
    assert parse_spec("all", 50) == list(range(50))
    assert parse_spec("  ALL ", 3) == [0, 1, 2]


def test_official_vis_steps_string_parses_verbatim():
    assert parse_spec("0-19,45-49", 50) == list(range(20)) + [45, 46, 47, 48, 49]


def test_official_layers_list_parses_verbatim():
    assert parse_spec("0 10 20 30 39", 40, name="layers") == [0, 10, 20, 30, 39]


def test_commas_and_spaces_mix_as_separators():
    assert parse_spec(" 3,  1 ,\t2 ", 10) == [1, 2, 3]


def test_negative_index_counts_from_the_end():
    assert parse_spec("-1", 50) == [49]
    assert parse_spec("-50", 50) == [0]


def test_negative_range_picks_the_last_five():
    assert parse_spec("-5--1", 50) == [45, 46, 47, 48, 49]


def test_mixed_positive_and_negative_range():
    assert parse_spec("47--1", 50) == [47, 48, 49]


def test_duplicates_and_overlaps_are_merged_and_sorted():
    assert parse_spec("5,3,3,0-4,2-6,-1,9", 10) == [0, 1, 2, 3, 4, 5, 6, 9]


def test_single_item_range():
    assert parse_spec("7-7", 10) == [7]


@pytest.mark.parametrize("spec", ["", "  ", "\t\n", ",", " , ,"])
def test_empty_spec_is_an_error(spec):
    with pytest.raises(SpecError, match="empty"):
        parse_spec(spec, 50)


def test_none_spec_is_an_error():
    with pytest.raises(SpecError):
        parse_spec(None, 50)


def test_out_of_range_names_the_token_and_the_valid_range():
    with pytest.raises(SpecError) as info:
        parse_spec("60", 50)
    message = str(info.value)
    assert "60" in message
    assert "0..49" in message


@pytest.mark.parametrize("spec", ["50", "-51", "0-50", "-60--1"])
def test_indices_just_outside_the_range_are_errors(spec):
    with pytest.raises(SpecError, match="out of range"):
        parse_spec(spec, 50)


@pytest.mark.parametrize("spec", ["a", "1.5", "1-", "-", "1-2-3", "0x10", "1;2", "+3"])
def test_unreadable_tokens_are_errors(spec):
    with pytest.raises(SpecError, match="cannot read"):
        parse_spec(spec, 50)


def test_backwards_range_is_an_error():
    with pytest.raises(SpecError, match="backwards"):
        parse_spec("5-2", 50)


@pytest.mark.parametrize("count", [0, -1])
def test_nothing_to_pick_from_is_an_error(count):
    with pytest.raises(SpecError, match="nothing to pick"):
        parse_spec("all", count)


def test_huge_integer_is_a_spec_error_not_a_plain_value_error():
    # int() refuses strings over 4300 digits with a plain ValueError.
    with pytest.raises(SpecError):
        parse_spec("9" * 5000, 50)


def test_error_message_names_what_is_being_picked():
    with pytest.raises(SpecError) as info:
        parse_spec("99", 40, name="layers")
    assert str(info.value).startswith("layers: ")
    assert "valid layers are 0..39" in str(info.value)


def test_spec_error_is_a_value_error():
    assert issubclass(SpecError, ValueError)


@pytest.mark.parametrize("indices, text", [
    ([0, 1, 2, 5], "0-2,5"),
    ([5, 0, 2, 1, 1], "0-2,5"),
    ([7], "7"),
    ([3, 4], "3-4"),
    (list(range(20)) + [45, 46, 47, 48, 49], "0-19,45-49"),
    ([], ""),
])
def test_format_spec_compresses_runs(indices, text):
    assert format_spec(indices) == text


@pytest.mark.parametrize("indices", [[0], [49], [0, 2, 4], [1, 2, 3, 10, 11, 49], list(range(50))])
def test_format_then_parse_round_trips(indices):
    assert parse_spec(format_spec(indices), 50) == sorted(set(indices))


@given(text=st.text(), count=st.integers(min_value=1, max_value=100))
def test_any_text_parses_to_valid_indices_or_raises_spec_error(text, count):
    try:
        picked = parse_spec(text, count)
    except SpecError:
        return
    assert picked == sorted(set(picked))
    assert all(0 <= i < count for i in picked)
    assert picked


@given(text=st.text(alphabet="0123456789-, all\t", max_size=30), count=st.integers(min_value=1, max_value=60))
def test_spec_like_text_parses_to_valid_indices_or_raises_spec_error(text, count):
    try:
        picked = parse_spec(text, count)
    except SpecError:
        return
    assert picked == sorted(set(picked))
    assert all(0 <= i < count for i in picked)


@given(data=st.data(), count=st.integers(min_value=1, max_value=200))
def test_round_trip_holds_for_any_indices_in_range(data, count):
    indices = data.draw(st.lists(st.integers(min_value=0, max_value=count - 1), min_size=1, max_size=40))
    assert parse_spec(format_spec(indices), count) == sorted(set(indices))


# ---- properties of the syntax-only check (spec_ranges) and its agreement with parse_spec ------

from hypothesis import settings  # noqa: E402

from cos_core.steps import spec_ranges  # noqa: E402

SPEC_ALPHABET = "0123456789-, all\t"


@given(text=st.text())
def test_spec_ranges_of_any_text_is_none_pairs_or_one_spec_error(text):
    try:
        pairs = spec_ranges(text, name="capture_steps")
    except SpecError as err:
        assert str(err).startswith("capture_steps: ")
        return
    if pairs is None:
        assert text.strip().lower() == "all"
        return
    assert pairs and all(isinstance(a, int) and isinstance(b, int) for a, b in pairs)
    assert all(b >= a for a, b in pairs if (a < 0) == (b < 0))


@given(text=st.one_of(st.text(), st.text(alphabet=SPEC_ALPHABET, max_size=30)),
       counts=st.lists(st.integers(min_value=1, max_value=80), min_size=1, max_size=4))
def test_a_syntax_error_is_an_error_for_every_count(text, counts):
    """spec_ranges refuses only what parse_spec refuses whatever the count: checking a widget before
    the run never rejects a spec that would have worked."""
    try:
        spec_ranges(text)
    except SpecError:
        for count in counts:
            with pytest.raises(SpecError):
                parse_spec(text, count)


def _resolved(pairs, count):
    picked = set()
    for a, b in pairs:
        picked.update(range(a % count, b % count + 1))
    return picked


@given(text=st.text(alphabet=SPEC_ALPHABET, max_size=30), count=st.integers(min_value=1, max_value=60))
def test_what_parse_spec_picks_is_what_spec_ranges_describes(text, count):
    """Whenever parse_spec accepts a spec, spec_ranges accepts it too and its pairs, resolved against
    the count, pick the same indices: so a recorder that filters by the pairs before S is known (only
    non-negative specs) never drops a step the spec asks for."""
    try:
        picked = parse_spec(text, count)
    except SpecError:
        return
    pairs = spec_ranges(text)
    if pairs is None:
        assert picked == list(range(count))
        return
    assert set(picked) == _resolved(pairs, count)
    if all(a >= 0 and b >= 0 for a, b in pairs):
        assert all(any(a <= i <= b for a, b in pairs) for i in picked)


@st.composite
def specs(draw):
    """A well-formed spec with its meaning: items in [-count, count), joined by any separators."""
    count = draw(st.integers(min_value=1, max_value=50))
    index = st.integers(min_value=-count, max_value=count - 1)
    items = draw(st.lists(st.one_of(index.map(lambda i: (i, i)), st.tuples(index, index)), min_size=1, max_size=6))
    seps = draw(st.lists(st.sampled_from([",", " ", ", ", "\t", " ,  "]), min_size=len(items) - 1,
                         max_size=len(items) - 1))
    tokens = [str(a) if a == b else f"{a}-{b}" for a, b in items]
    text = tokens[0] + "".join(s + t for s, t in zip(seps, tokens[1:]))
    return text, count, items


@given(spec=specs())
def test_well_formed_specs_mean_exactly_their_items(spec):
    text, count, items = spec
    backwards = any(b % count < a % count for a, b in items)
    if backwards:
        with pytest.raises(SpecError, match="backwards"):
            parse_spec(text, count)
        return
    assert parse_spec(text, count) == sorted(_resolved(items, count))


@given(text=st.text(min_size=1), count=st.integers(min_value=1, max_value=100),
       name=st.sampled_from(["steps", "layers", "capture_steps", "injections"]))
def test_error_messages_name_the_input_and_stay_short(text, count, name):
    """One clear error: it starts with the input's name and quotes at most a readable part of a
    pasted blob (ComfyUI shows it in a dialog, once per input of the node)."""
    for check in (lambda: parse_spec(text, count, name=name), lambda: spec_ranges(text, name=name)):
        try:
            check()
        except SpecError as err:
            message = str(err)
            assert message.startswith(f"{name}: ")
            assert len(message) <= 300, f"{len(message)} characters"


@pytest.mark.parametrize("spec", ["0-" + "9" * 30, "9" * 25, "-" + "9" * 25, "0-" + "9" * 5000])
def test_huge_numbers_are_never_expanded(spec):
    import time

    started = time.perf_counter()
    pairs = spec_ranges(spec)
    assert pairs and max(abs(v) for pair in pairs for v in pair) <= 10**19
    with pytest.raises(SpecError, match="out of range"):
        parse_spec(spec, 10_000)
    assert time.perf_counter() - started < 0.5


@settings(max_examples=50)
@given(text=st.sampled_from(["all", "ALL", " All ", "\tall\n"]), count=st.integers(min_value=1, max_value=30))
def test_all_in_any_case_and_spacing(text, count):
    assert spec_ranges(text) is None and parse_spec(text, count) == list(range(count))


@pytest.mark.parametrize("blob", ["x" * 5000, "1-" + "y" * 5000, "7" * 3000 + "-1", "5-" + "4" * 500])
def test_a_pasted_blob_gives_a_short_error(blob):
    for check in (lambda: parse_spec(blob, 20, name="steps"), lambda: spec_ranges(blob, name="steps")):
        try:
            check()
        except SpecError as err:
            assert str(err).startswith("steps: ") and len(str(err)) <= 300, len(str(err))
