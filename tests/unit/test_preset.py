"""Presets: the `-S` arguments they print and the params they make, which must agree."""

import copy

import pytest

from helpers import ROOT
from symbiotic.config import load_params
from symbiotic.errors import UserError
from symbiotic.preset import applied, arguments, main


def test_applied_lays_the_preset_over_params_as_its_arguments_say():
    params = load_params(ROOT / "params.yaml")
    paper = applied(copy.deepcopy(params), "paper")
    assert paper["model"]["ptb"]["hidden"] == [1500] and paper["model"]["ptb"]["dropout_gate"] == 0.2  # kept
    args = arguments("paper")
    assert "model.ptb.hidden=[1500]" in args and args[args.index("model.ptb.hidden=[1500]") - 1] == "-S"


def test_paper_keeps_the_papers_recipe_and_quick_shortens_the_default():
    params = load_params(ROOT / "params.yaml")
    paper = applied(copy.deepcopy(params), "paper")
    assert (paper["train"]["ptb"]["lr"], paper["train"]["ptb"]["batch"], paper["train"]["ptb"]["bptt"]) == (30.0, 32, 70)
    assert paper["model"]["ptb"]["dropout_embed"] == 0.65 and paper["train"]["an4"]["optimizer"] == "sgd"
    quick = applied(copy.deepcopy(params), "quick")
    for task in ("ptb", "an4"):
        assert quick["baseline"][task]["epochs"] < params["baseline"][task]["epochs"]
        assert quick["grow"][task]["epochs"] == quick["baseline"][task]["epochs"]  # one budget for both


def test_unknown_preset_names_the_known_ones():
    with pytest.raises(UserError, match="paper"):
        applied({}, "huge")


@pytest.mark.parametrize("name", sorted(p.stem for p in (ROOT / "presets").glob("*.yaml")))
def test_the_printed_line_splits_into_the_arguments_as_the_shell_splits_it(name, capsys):
    """`dvc exp run $(python -m symbiotic.preset NAME)`: the shell splits the line on whitespace
    and keeps quotes literally, so each argument must be one word with no quoting (a list such
    as profile.measure.sparsities once reached dvc as broken words and failed to parse)."""
    main([name])
    words = capsys.readouterr().out.split()
    assert words == arguments(name)
    assert all("'" not in w and '"' not in w for w in words)
