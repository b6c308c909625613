"""The label selector parser/matcher and the Quantity formatter: examples plus properties."""

from __future__ import annotations

import math
import re
from decimal import Decimal

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from autoscaler.errors import quoted
from autoscaler.live.store import WorkloadInfo
from external_metrics import negotiation, quantity, selectors
from external_metrics.lookup import WorkloadIndex
from external_metrics.selectors import Operator, Requirement, Selector, SelectorError

# --- selectors: examples ------------------------------------------------------------------------

LABELS = {"app": "llm", "tier": "gold", "replicas": "4", "example.com/team": "infra"}


@pytest.mark.parametrize(
    ("text", "matches"),
    [
        ("", True),
        ("app=llm", True),
        ("app==llm", True),
        ("app=other", False),
        ("app!=other", True),
        ("missing!=x", True),  # != matches an absent label (apimachinery semantics)
        ("app in (llm, x)", True),
        ("app in (x)", False),
        ("missing in (x)", False),
        ("app notin (x,y)", True),
        ("missing notin (x)", True),
        ("app notin (llm)", False),
        ("tier", True),
        ("missing", False),
        ("!missing", True),
        ("!tier", False),
        ("replicas>3", True),
        ("replicas<4", False),
        ("app>1", False),  # not an integer label
        ("example.com/team=infra,tier=gold", True),
        ("  app = llm ,  tier  in(gold)  ", True),
        ("app=llm,tier=silver", False),
    ],
)
def test_selector_semantics(text, matches):
    assert selectors.parse(text).matches(LABELS) is matches


@pytest.mark.parametrize(
    ("text", "position", "fragment"),
    [
        ("app=llm,", 8, "expected a requirement after ','"),
        ("app in ()", 8, "at least one value"),
        ("app in (a", 9, "',' or ')'"),
        ("app in a", 7, "'(' to open"),
        ("app nope", 4, "found 'nope'"),
        ("=llm", 0, "expected a label key"),
        ("app=ll m", 7, "expected ',' between requirements"),
        ("-bad=x", 0, "invalid key"),
        ("app=-x", 4, "invalid value"),
        ("Upper.Case/x=y", 0, "DNS subdomain"),
        ("/x=y", 0, "prefix before '/' must not be empty"),
        ("a=" + "v" * 64, 2, "longer than 63"),
        ("k" * 64, 0, "longer than 63"),
        ("replicas>x", 9, "needs an integer"),
        ("!", 1, "expected a label key"),
    ],
)
def test_selector_errors_say_what_and_where(text, position, fragment):
    with pytest.raises(SelectorError) as err:
        selectors.parse(text)
    assert err.value.position == position
    assert fragment in str(err.value)
    shown = quoted(text)
    assert str(err.value).startswith(f"invalid label selector {shown} at character {position}")


def test_a_huge_selector_is_echoed_cut_to_a_bounded_message():
    with pytest.raises(SelectorError) as err:
        selectors.parse("a=" + "v" * 100_000)
    assert len(str(err.value)) < 400
    assert "(100002 characters)" in str(err.value)


def test_selector_error_is_an_input_error():
    from autoscaler.errors import InputError

    with pytest.raises(InputError):
        selectors.parse("a in")


def test_canonical_string_sorts_requirements_and_values():
    s = selectors.parse("tier in (silver, gold), app=llm, !x")
    assert str(s) == "app=llm,tier in (gold,silver),!x"
    assert selectors.parse(str(s)) == s


# --- selectors: properties ----------------------------------------------------------------------

_name = st.from_regex(r"[a-z0-9]([-a-z0-9_.]{0,10}[a-z0-9])?", fullmatch=True)
_prefix = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,6}[a-z0-9])?(\.[a-z0-9]{1,5}){0,2}", fullmatch=True)
keys = st.one_of(_name, st.builds(lambda p, n: f"{p}/{n}", _prefix, _name))
values = st.one_of(st.just(""), _name)
label_maps = st.dictionaries(keys, values, max_size=5)


@st.composite
def requirements(draw: st.DrawFn) -> Requirement:
    op = draw(st.sampled_from(list(Operator)))
    key = draw(keys)
    if op in (Operator.EXISTS, Operator.DOES_NOT_EXIST):
        return Requirement(key, op)
    if op in (Operator.GREATER_THAN, Operator.LESS_THAN):
        return Requirement(key, op, (str(draw(st.integers(-1000, 1000))),))
    if op in (Operator.IN, Operator.NOT_IN):
        vals = draw(st.sets(values, min_size=1, max_size=4))
        return Requirement(key, op, tuple(sorted(vals)))
    return Requirement(key, op, (draw(values),))


selectors_ = st.lists(requirements(), max_size=5).map(
    lambda rs: Selector(tuple(sorted(rs, key=lambda r: (r.key, r.operator.value, r.values))))
)


@given(selectors_)
def test_printed_selectors_parse_back_to_themselves(selector):
    assert selectors.parse(str(selector)) == selector


@given(st.text(max_size=60))
def test_parser_never_crashes(text):
    try:
        parsed = selectors.parse(text)
    except SelectorError as err:
        assert err.problem
        assert 0 <= err.position <= len(text)
    else:
        assert selectors.parse(str(parsed)) == parsed


@given(
    st.text(alphabet="ab=!,() inotxy<>0123456789-./", max_size=40)
)  # grammar-heavy alphabet reaches the deeper branches
def test_parser_never_crashes_on_grammar_soup(text):
    try:
        selectors.parse(text)
    except SelectorError as err:
        assert str(err)


@given(selectors_, label_maps)
def test_matching_is_the_conjunction_of_requirements(selector, labels):
    assert selector.matches(labels) == all(r.matches(labels) for r in selector.requirements)


@given(keys, values, label_maps)
def test_negated_operators_are_complements(key, value, labels):
    eq = Requirement(key, Operator.EQUALS, (value,))
    ne = Requirement(key, Operator.NOT_EQUALS, (value,))
    assert eq.matches(labels) != ne.matches(labels)
    exists = Requirement(key, Operator.EXISTS)
    absent = Requirement(key, Operator.DOES_NOT_EXIST)
    assert exists.matches(labels) != absent.matches(labels)


@given(st.lists(label_maps, max_size=8), selectors_)
def test_index_selects_exactly_what_a_scan_selects(label_list, selector):
    infos = [WorkloadInfo("ns", f"w{i}", labels) for i, labels in enumerate(label_list)]
    infos.append(WorkloadInfo("other", "w0", label_list[0] if label_list else {}))
    index = WorkloadIndex(infos)
    expected = [w for w in infos if w.namespace == "ns" and selector.matches(w.labels)]
    assert index.select("ns", selector) == sorted(expected, key=lambda w: w.key)


# --- quantity -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (2.5, "2500m"),
        (0.0, "0m"),
        (3.0, "3000m"),
        (0.1 * 3, "300m"),  # 0.30000000000000004: no float noise on the wire
        (1.0005, "1001m"),  # half away from zero
        (-1.0005, "-1001m"),
        (0.0004, "0m"),
        (1e-9, "0m"),
        (123456.789, "123456789m"),
    ],
)
def test_format_milli(value, text):
    assert quantity.format_milli(value) == text


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 1e17])
def test_unrepresentable_values_are_quantity_errors(value):
    with pytest.raises(quantity.QuantityError, match="Quantity"):
        quantity.format_milli(value)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("2500m", "2.5"),
        ("1", "1"),
        ("1.5k", "1500"),
        ("1Ki", "1024"),
        ("2Mi", "2097152"),
        ("100u", "0.0001"),
        ("5n", "0.000000005"),
        ("1e3", "1000"),
        ("1E-2", "0.01"),
        ("-.5", "-0.5"),
        ("+3.", "3"),
        ("2E", "2000000000000000000"),
    ],
)
def test_parse_quantity(text, value):
    assert quantity.parse_quantity(text) == Decimal(value)


@pytest.mark.parametrize("text", ["", "m", "1mi", "1.2.3", "abc", "1 k", "1e", "1KiB", "--1"])
def test_parse_quantity_rejects_garbage(text):
    with pytest.raises(quantity.QuantityError, match="not a Quantity"):
        quantity.parse_quantity(text)


finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e15, max_value=1e15)


@given(finite)
def test_formatted_quantity_round_trips_within_half_a_milli(value):
    text = quantity.format_milli(value)
    assert re.fullmatch(r"-?[0-9]+m", text)
    back = quantity.parse_quantity(text)
    assert abs(back - Decimal(repr(value))) <= Decimal("0.0005")
    assert quantity.milli_units(float(back)) == quantity.milli_units(value)


@given(st.integers(-(2**62), 2**62))
def test_whole_milli_values_are_exact(milli):
    value = milli / 1000
    assume(abs(value) < 1e15)  # beyond ~2^53 / 1000 floats lose whole milli-units anyway
    assert quantity.parse_quantity(quantity.format_milli(value)) * 1000 == Decimal(
        quantity.milli_units(value)
    )


@given(st.text(max_size=20))
def test_parse_quantity_never_crashes(text):
    try:
        quantity.parse_quantity(text)
    except quantity.QuantityError as err:
        assert str(err)


# --- negotiation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "ok"),
    [
        (None, True),
        ("", True),
        ("application/vnd.kubernetes.protobuf, */*", True),
        ("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json",
         True),
        ("APPLICATION/JSON", True),
        ("application/vnd.kubernetes.protobuf", False),
        ("text/plain, application/json;q=0", False),
        ("application/json;q=bogus", True),
    ],
)  # fmt: skip
def test_accepts_json(accept, ok):
    assert negotiation.accepts_json(accept) is ok
