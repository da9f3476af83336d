"""The report page's own rules: how numbers are written, which score it draws, and a clear
error for a missing input (the browser test checks a whole page: tests/pipeline)."""

import pytest

from symbiotic.errors import UserError
from symbiotic.report.headline import metric_of
from symbiotic.report.page import Inputs, number, page


@pytest.mark.parametrize("value, text", [(4771600, "4771600"), (136.9624755, "137"), (0.17651695, "0.1765"),
                                         (2.0237340, "2.024"), (True, "True"), (None, "None"), ("csr", "csr"),
                                         (12345.0, "12345"), (float("nan"), "")])
def test_numbers_are_written_whole_or_to_four_significant_digits(value, text):
    """A missing value (a log's empty cell) is blank, not "nan"."""
    assert number(value) == text


def test_the_score_is_named_by_the_summary_not_by_the_task():
    assert metric_of({"wer_baseline": 1.0, "wer_no_worse": True, "speedup_full_x": 2.0}) == "wer"
    with pytest.raises(UserError, match="no single <metric>_no_worse"):
        metric_of({"speedup_full_x": 2.0})


def test_a_missing_input_names_the_file_and_the_fix(tmp_path):
    inputs = Inputs("ptb", tmp_path / "metrics", tmp_path / "profiles", tmp_path / "plots", tmp_path / "models")
    with pytest.raises(UserError, match="summary.json, which is missing") as info:
        page(inputs)
    assert "dvc repro" in info.value.fix


def test_the_headline_nests_the_summary_under_the_task():
    from symbiotic.report.headline import headline

    summary = {"wer_baseline": 33.1, "wer_final": 31.4, "wer_no_worse": True, "wer_change": -1.7,
               "compression_recurrent_x": 3.7, "compression_total_x": 3.4, "speedup_recurrent_x": 0.85,
               "speedup_full_x": 0.89, "fingerprint": "cpu:A", "profile_fingerprint": "cpu:B", "seconds": 3.0}
    out = headline("an4", summary)
    assert list(out) == ["an4"] and out["an4"]["wer_final"] == 31.4 and "wer_change" not in out["an4"]
    assert (out["an4"]["evaluated_on"], out["an4"]["profiled_on"]) == ("cpu:A", "cpu:B")
    with pytest.raises(UserError, match="summary.json lacks profile_fingerprint"):
        headline("an4", {k: v for k, v in summary.items() if k != "profile_fingerprint"})
