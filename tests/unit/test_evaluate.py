"""The evaluate stage's table, summary and chart take the metric from the task, never its name."""

import pandas as pd
import pytest

from symbiotic import io
from symbiotic.flow import evaluate
from symbiotic.tasks import task_class
from symbiotic.tasks.base import Metric


def _table(metric: str, baseline: float, final: float) -> pd.DataFrame:
    row = {"params_recurrent_nonzero": 100, "params_total_nonzero": 200, "latency_recurrent_ms": 2.0,
           "latency_full_ms": 4.0}
    return pd.DataFrame([{**row, "model": "baseline", metric: baseline},
                         {**row, "model": "final", metric: final, "params_recurrent_nonzero": 10}])


def test_the_chart_labels_the_score_with_the_task_metric_unit(monkeypatch, tmp_path):
    labels = []
    monkeypatch.setattr(io, "save_figure", lambda fig, path: labels.append(fig.axes[0].get_ylabel()))
    wer = task_class("an4").metric  # "%": the unit comes from the task
    evaluate.plot(_table("wer", 30.0, 29.0), wer, tmp_path / "a.png", "an4")
    evaluate.plot(_table("bleu", 30.0, 29.0), Metric("bleu", unit="pts"), tmp_path / "b.png", "t")
    assert labels == ["test wer (%)", "test bleu (pts)"]


@pytest.mark.parametrize("lower_is_better, no_worse", [(True, True), (False, False)])
def test_the_summary_judges_the_final_score_in_the_metric_direction(lower_is_better, no_worse):
    result = evaluate.summary(_table("score", 30.0, 29.0), Metric("score", lower_is_better=lower_is_better))
    assert result["score_no_worse"] is no_worse and result["score_change"] == -1.0
    assert result["compression_recurrent_x"] == 10.0
