import copy
from dataclasses import dataclass

import pytest
import yaml

from helpers import ROOT
from symbiotic.config import SECTIONS, build, load_params, ranged, section
from symbiotic.data.features import FeatureConfig, Normalization
from symbiotic.errors import UserError
from symbiotic.preset import PRESETS, applied
from symbiotic.tasks import TASKS, task_module, task_preparation


@dataclass(frozen=True)
class Demo:
    width: int = ranged(8, lo=1, hi=64)
    rate: float = ranged(0.5, lo=0.0, hi=1.0)
    mode: str = ranged("a", choices=("a", "b"))
    sizes: tuple[int, ...] = ranged((1, 2), lo=1)


@dataclass(frozen=True)
class Floats:
    value: float | None = ranged(None, lo=0.0)
    rates: tuple[float, ...] = ranged((0.5,), lo=0.0, hi=1.0)
    bound: float = ranged(1.0, finite=False)  # +-inf admitted, NaN never
    plain: float = 1.0  # no range at all: finite still


DEMO = {"width": 8, "rate": 0.5, "mode": "a", "sizes": [1, 2]}
FLOATS = {"value": 1.0, "rates": [0.5], "bound": 1.0, "plain": 1.0}


def test_int_to_float():
    cfg = build(Demo, {**DEMO, "rate": 1}, "demo")
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
        build(Demo, {**DEMO, **values}, "demo")
    assert words in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_required_key():
    @dataclass(frozen=True)
    class Needs:
        size: int = ranged(lo=1)

    with pytest.raises(UserError, match="lacks 'x.size'"):
        build(Needs, {}, "x")


@pytest.mark.parametrize("key", sorted(DEMO))
def test_a_missing_key_fails_even_where_the_field_has_a_default(key):
    # The defaults are for code that builds configs itself; a deleted params key must not
    # silently take the code's value.
    values = {k: v for k, v in DEMO.items() if k != key}
    with pytest.raises(UserError, match=f"lacks 'demo.{key}'"):
        build(Demo, values, "demo")


@pytest.mark.parametrize("values, words", [
    ({"value": float("nan")}, "'f.value' is nan, not a finite number — set a finite value"),
    ({"value": float("inf")}, "'f.value' is inf, not a finite number"),
    ({"rates": [0.5, float("nan")]}, "'f.rates' holds nan, not a finite number"),
    ({"bound": float("nan")}, "'f.bound' is nan"),
    ({"plain": float("-inf")}, "'f.plain' is -inf"),
])
def test_non_finite_floats_are_refused(values, words):
    with pytest.raises(UserError) as err:
        build(Floats, {**FLOATS, **values}, "f")
    assert words in str(err.value)


def test_inf_where_the_range_admits_it():
    cfg = build(Floats, {**FLOATS, "bound": float("-inf"), "value": None}, "f")
    assert cfg.bound == float("-inf") and cfg.value is None


def test_enum_field():
    features = section(load_params(ROOT / "params.yaml"), "prepare.an4.features")
    assert build(FeatureConfig, {**features, "normalization": "global"}, "f").normalization is Normalization.GLOBAL
    with pytest.raises(UserError, match="utterance, global, none"):
        build(FeatureConfig, {**features, "normalization": "cmvn"}, "f")


# ---- load_params: what no dataclass sees -----------------------------------------------------
def _load(tmp_path, text: str) -> dict:
    path = tmp_path / "params.yaml"
    path.write_text(text)
    return load_params(path)


def _refused(tmp_path, text: str) -> str:
    with pytest.raises(UserError) as err:
        _load(tmp_path, text)
    message = str(err.value)
    assert "\n" not in message and " — " in message
    return message


@pytest.mark.parametrize("text, key, lines", [
    ("device: cpu\ndevice: cuda\n", "device", (1, 2)),
    ("train:\n  ptb:\n    lr: 1.0\n    clip: 0.2\n    lr: 2.0\n", "train.ptb.lr", (3, 5)),
    ("train:\n  ptb:\n    lr: 1.0\n  an4:\n    lr: 1.0\ntrain:\n  ptb: {}\n", "train", (1, 6)),
    ("prepare:\n  an4:\n    features: {n_mfcc: 13, n_mfcc: 40}\n", "prepare.an4.features.n_mfcc", (3, 3)),
    ("profile:\n  measure:\n    sparsities: [{a: 1, a: 2}]\n", "profile.measure.sparsities[0].a", (3, 3)),
])
def test_a_key_written_twice_is_named_with_its_lines(tmp_path, text, key, lines):
    message = _refused(tmp_path, text)
    assert f"key '{key}' is written twice (lines {lines[0]} and {lines[1]}) — keep one of them" in message


def test_same_key_in_two_sections_is_not_a_duplicate(tmp_path):
    params = _load(tmp_path, "train:\n  ptb:\n    lr: 1.0\n  an4:\n    lr: 2.0\n")
    assert params["train"]["an4"]["lr"] == 2.0


@pytest.mark.parametrize("text, words", [
    ("trian:\n  ptb: {}\n", "unknown section 'trian' — remove it or use one of: device, prepare, model"),
    ("train:\n  ptbb: {}\n", "unknown task 'train.ptbb' — remove it or use one of: ptb, an4"),
    ("prepare:\n  sourc: null\n", "unknown key 'prepare.sourc' — remove it or use one of: source, ptb, an4"),
    ("profile:\n  measures: {}\n", "unknown key 'profile.measures'"),
    ("train: [1, 2\n", "is not valid YAML"),
    ("- device\n- cpu\n", "must hold a mapping of sections"),
    ("", "must hold a mapping of sections"),
])
def test_unknown_sections_and_bad_files(tmp_path, text, words):
    assert words in _refused(tmp_path, text)


def test_malformed_yaml_names_the_line(tmp_path):
    message = _refused(tmp_path, "train:\n  ptb:\n    lr: [5.0\n")
    assert "line 4; while parsing a flow sequence, line 3" in message


def test_known_sections_are_those_of_params_yaml():
    assert list(SECTIONS) == list(yaml.safe_load((ROOT / "params.yaml").read_text()))


@pytest.mark.parametrize("text, where, words", [
    ("train: null\n", "train.ptb", "has no section 'train.ptb'"),
    ("train: 3\n", "train.ptb", "has no section 'train.ptb'"),
    ("train:\n  ptb: 3\n", "train.ptb", "'train.ptb' must be a mapping"),
])
def test_sections_that_are_no_mapping_fail_where_they_are_read(tmp_path, text, where, words):
    params = _load(tmp_path, text)
    with pytest.raises(UserError, match=words):
        section(params, where)


# ---- params.yaml is complete: every section builds with its dataclass ------------------------
def build_every_section(params: dict) -> dict[str, object]:
    """Every config params.yaml holds, built as the stages build it: {dotted section: config}."""
    from symbiotic.data.prepare import source_param
    from symbiotic.flow.evaluate import EvaluateConfig
    from symbiotic.flow.grow import GrowConfig
    from symbiotic.flow.grow_lhp import GrowLHPConfig
    from symbiotic.flow.prune_rows import PruneRowsConfig
    from symbiotic.flow.prune_weights import PruneWeightsConfig
    from symbiotic.flow.stage import ThresholdConfig
    from symbiotic.hardware.measure import resolve_device
    from symbiotic.hardware.profile import ProfileConfig, TaskShape
    from symbiotic.hardware.report import profile_use

    use = profile_use(params)
    built = {"device": resolve_device(params["device"]), "prepare.source": source_param(params),
             "profile.measure": build(ProfileConfig, section(params, "profile.measure"), "profile.measure"),
             "profile.accept_foreign": use.accept_foreign, "profile.imported": use.imported}
    for task in TASKS:
        module = task_module(task)
        classes = {"model": module.ModelSpec, "train": module.TrainConfig, "baseline": module.BaselineSpec,
                   "grow": GrowConfig, "threshold": ThresholdConfig, "prune_rows": PruneRowsConfig,
                   "grow_lhp": GrowLHPConfig, "prune_weights": PruneWeightsConfig, "evaluate": EvaluateConfig,
                   "profile": TaskShape}
        for name, cls in classes.items():
            built[f"{name}.{task}"] = build(cls, section(params, f"{name}.{task}"), f"{name}.{task}")
        shape = built[f"profile.{task}"]
        built.update({f"profile.{task}.grids.{d}": shape.grid(d) for d in shape.dimensions()})
        where = f"prepare.{task}"
        built[where] = task_preparation(task).config(section(params, where), where)  # AN4: features too
    return built


def _every_subsection(params: dict) -> set[str]:
    names = set()
    for name, value in params.items():
        names |= {f"{name}.{child}" for child in value} if isinstance(value, dict) else {name}
    return names


@pytest.mark.parametrize("preset", [None, *sorted(p.stem for p in PRESETS.glob("*.yaml"))])
def test_every_section_of_params_yaml_builds(preset):
    # A field added to a config without its params.yaml key (or a key deleted) fails here.
    params = load_params(ROOT / "params.yaml")
    if preset:
        load_params(PRESETS / f"{preset}.yaml")  # the preset's own file: no key twice, known sections
        params = applied(copy.deepcopy(params), preset)
    built = build_every_section(params)
    assert _every_subsection(params) <= set(built)  # a new section needs its dataclass above


def test_a_file_that_is_not_text(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_bytes(b"device: \xff\xfe\n")
    with pytest.raises(UserError, match="is not UTF-8 text"):
        load_params(path)
