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
