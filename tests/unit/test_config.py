from dataclasses import dataclass

import pytest

from symbiotic.config import build, ranged
from symbiotic.data.features import FeatureConfig, Normalization
from symbiotic.errors import UserError


@dataclass(frozen=True)
class Demo:
    width: int = ranged(8, lo=1, hi=64)
    rate: float = ranged(0.5, lo=0.0, hi=1.0)
    mode: str = ranged("a", choices=("a", "b"))
    sizes: tuple[int, ...] = ranged((1, 2), lo=1)


def test_defaults_and_int_to_float():
    cfg = build(Demo, {"rate": 1}, "demo")
    assert cfg == Demo(8, 1.0, "a", (1, 2))


@pytest.mark.parametrize("values, words", [
    ({"widht": 3}, "unknown key 'demo.widht'"),
    ({"width": "8"}, "'demo.width' is '8' (str)"),
    ({"width": 65}, "out of range"),
    ({"rate": -0.1}, "out of range"),
    ({"mode": "c"}, "use one of: a, b"),
    ({"sizes": [1, 0]}, "out of range"),
    ({"width": True}, "give a int"),
])
def test_bad_values_name_the_key_and_the_fix(values, words):
    with pytest.raises(UserError) as err:
        build(Demo, values, "demo")
    assert words in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_required_key():
    @dataclass(frozen=True)
    class Needs:
        size: int = ranged(lo=1)

    with pytest.raises(UserError, match="lacks 'x.size'"):
        build(Needs, {}, "x")


def test_enum_field():
    assert build(FeatureConfig, {"normalization": "global"}, "f").normalization is Normalization.GLOBAL
    with pytest.raises(UserError, match="utterance, global, none"):
        build(FeatureConfig, {"normalization": "cmvn"}, "f")
