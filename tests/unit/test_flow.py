"""The steps' algorithms on tiny hand-built models and data."""

import copy

import pandas as pd
import pytest
import torch

from helpers import tiny_prepared_ptb
from symbiotic.flow import grow_lhp as flow_grow_lhp
from symbiotic.flow.grow import gradient_magnitudes, growth_point
from symbiotic.flow.grow_lhp import GrowLHPConfig, at_sparsity, compare_sparse, decide, grow_to, lhp_targets
from symbiotic.flow.prune_rows import PruneRowsConfig, _remove_smallest, prune_rows
from symbiotic.sparsity.masks import random_masks, recurrent_masks
from symbiotic.sparsity.thinning import thin
from symbiotic.sparsity.units import active_units, unit_scores
from symbiotic.tasks.ptb import TrainConfig
from symbiotic.tasks.ptb import PTBTask
from symbiotic.training.loop import Trainer
from symbiotic.training.resume import Resume
from symbiotic.training.schedule import Threshold

SPEC = {"embed": 6, "hidden": (8,), "gate_hidden": (5,)}


@pytest.fixture
def task(tmp_path):
    cfg = TrainConfig(lr=1.0, batch=4, bptt=6, eval_batch=4, grad_batches=3, seed=0)
    return PTBTask(tiny_prepared_ptb(tmp_path / "ptb", tokens=600), cfg)


@pytest.fixture
def model(task):
    torch.manual_seed(0)
    m = task.new_model(SPEC)
    random_masks(m.layers, 0.5, torch.Generator().manual_seed(0))
    return m


def test_growth_wakes_the_dormant_entries_in_the_top_gradient_share_of_each_matrix(task, model):
    before = {n: m.clone() for n, (_, m) in recurrent_masks(model).items()}
    grads = gradient_magnitudes(task, model, 3, seed=0)
    growth_point(task, model, 0.1, 3, seed=0, scope="per_matrix")
    for name, (_, mask) in recurrent_masks(model).items():
        old, new = before[name].bool(), mask.bool()
        assert (new | ~old).all(), "an active connection was put to sleep"
        woken = new & ~old
        g = grads[name]
        # the paper's percentile: the top 10% of the whole matrix's gradients, of which the dormant wake
        top = torch.zeros(g.numel(), dtype=torch.bool)
        top[torch.sort(-g.reshape(-1).double(), stable=True).indices[: int(0.1 * g.numel() + 0.5)]] = True
        assert torch.equal(woken.reshape(-1), top & ~old.reshape(-1))


def test_row_pruning_removes_the_smallest_sum_units(model):
    scores = unit_scores(model, "hidden.0")
    expected = int(scores.argmin())
    removed = _remove_smallest(model, "hidden.0", "single", 0.0)
    assert removed == 1
    active = active_units(model, "hidden.0")
    assert not active[expected] and int(active.sum()) == 7


def test_gate_pruning_keeps_the_four_gates_equally_wide(model):
    _remove_smallest(model, "gate.0", "ratio", 0.4)  # 40% of 5 -> 2 per gate
    per_gate = active_units(model, "gate.0").view(4, 5).sum(1)
    assert per_gate.tolist() == [3, 3, 3, 3]


def test_rollback_restores_weights_and_masks_bit_for_bit(task, model, tmp_path):
    trainer = Trainer(task, model, task.cfg)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    never = Threshold(1e-9)  # no perplexity is this low: every iteration fails and rolls back
    cfg = PruneRowsConfig(ratio=0.3, min_ratio=0.1, single_unit_finish=False, max_iterations=3)
    log = prune_rows(task, model, trainer, cfg, never, "valid", Resume(None, "t", {}, []))
    assert len(log) == 2 and not any(r["accepted"] for r in log)  # 0.3 -> 0.15 -> 0.075 < 0.1: done
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_thinning_after_row_pruning_keeps_outputs(task, model):
    for key in ("embed", "hidden.0", "gate.0"):
        _remove_smallest(model, key, "ratio", 0.3)
    small = thin(model).eval()
    model.eval()
    x = torch.randint(0, task.vocab, (7, 3))
    assert small.config.hidden[0] < 8 and small.config.embed < 6
    assert torch.allclose(small(x)[0], model(x)[0], atol=1e-5)


def test_lhp_growth_widens_to_target_and_thins_back_exactly(task, model):
    for key in ("embed", "hidden.0", "gate.0"):
        _remove_smallest(model, key, "ratio", 0.3)
    small = thin(model)
    target = {"embed": 6, "hidden.0": 8, "gate.0": 5}
    grown = grow_to(task, small, target, lr=1.0, seed=0)
    assert grown.widths() == target
    # the new rows/columns were woken with -gradient x lr: some are nonzero now
    assert grown.decoder_w[:, small.config.hidden[0]:].abs().sum() > 0
    grown.eval()
    x = torch.randint(0, task.vocab, (5, 2))
    assert torch.allclose(thin(grown).eval()(x)[0], grown(x)[0], atol=1e-5)


def test_lhp_choice_on_a_synthetic_profile():
    rows = []
    for dim, sizes, lat, lhps in [
        ("hidden", [8, 10, 12, 16], [1.0, 1.4, 1.2, 1.5], [8, 12, 16]),  # 10 is slower than 12
        ("gate_hidden", [8, 10, 12, 16], [1.0, 1.1, 1.2, 1.3], [8, 10, 12, 16]),
        ("input", [4, 6, 8], [1.0, 1.0, 1.0], [4, 6, 8]),
    ]:
        rows += [{"dimension": dim, "size": s, "median_s": t, "is_lhp": s in lhps} for s, t in zip(sizes, lat)]
    widths = {"embed": 5, "hidden.0": 9, "gate.0": 9, "hidden.1": 13, "gate.1": 7}
    ceiling = {"embed": 8, "hidden.0": 16, "gate.0": 16, "hidden.1": 14, "gate.1": 16}
    targets = lhp_targets(pd.DataFrame(rows), widths, PTBTask.profile_dims, ceiling)
    assert targets["hidden.0"]["candidate"] == 12  # 10 is not an LHP; 12 is the nearest at or above 9
    assert targets["gate.0"]["candidate"] == 10
    assert targets["gate.1"]["candidate"] == 8
    assert targets["embed"]["candidate"] == 6
    # every layer snaps on layer 0's profile, but never above step (a)'s width: 16 > 14, so 13 stays
    assert targets["hidden.1"]["candidate"] == 13 and targets["hidden.1"]["lhp"] is None


def test_decision_follows_the_crossover():
    cfg = GrowLHPConfig(reachable_sparsity=0.9)
    assert decide(cfg, {"sparse_crossover": {"u_h": 0.8, "w": 0.9, "u_x": None}})["mode"] == "sparse"
    assert decide(cfg, {"sparse_crossover": {"u_h": 0.95, "w": 0.8}})["mode"] == "dense"
    assert decide(cfg, {"sparse_crossover": {"u_h": None, "w": 0.5}})["mode"] == "dense"
    forced = decide(GrowLHPConfig(mode="dense"), {"sparse_crossover": {"u_h": 0.5, "w": 0.5}})
    assert forced["mode"] == "dense" and forced["forced"]


def test_at_sparsity_prunes_a_copy_by_magnitude_to_the_target(model):
    before = {n: (w.detach().clone(), m.clone()) for n, (w, m) in recurrent_masks(model).items()}
    sparse = at_sparsity(model, 0.9)
    for name, (w, m) in recurrent_masks(sparse).items():
        w0, m0 = before[name]
        assert float(m.mean()) == pytest.approx(0.1, abs=1.0 / m.numel() + 1e-9)
        assert torch.equal(w[m == 0], torch.zeros_like(w[m == 0]))  # the mask invariant holds
        dropped = (m0 == 1) & (m == 0)
        assert w0[m == 1].abs().min() >= w0[dropped].abs().max()  # the smallest went
    for name, (w, m) in recurrent_masks(model).items():  # the original is untouched
        assert torch.equal(w, before[name][0]) and torch.equal(m, before[name][1])


def test_sparse_path_times_both_widths_and_names_the_faster(task, model):
    full = copy.deepcopy(model)
    for key in ("embed", "hidden.0", "gate.0"):
        _remove_smallest(model, key, "ratio", 0.3)
    thinned = thin(model)
    crossover = {"u_x": 0.5, "u_h": 0.5, "w": 0.95}
    check = compare_sparse(task, full, thinned, crossover, 0.9, torch.device("cpu"), 1, 3, seq_len=6, batch=2)
    assert check["full_ms"] > 0 and check["thinned_ms"] > 0
    assert check["faster"] == ("thinned" if check["thinned_ms"] < check["full_ms"] else "full")
    # one set of formats for both, the profile's choice at the expected sparsity: w's crossover is above it
    assert check["formats"] == {"u_x": "csr", "u_h": "csr", "w": "dense"}


def test_step_d_ships_step_c_widths_when_pruning_empties_no_unit(task, model):
    from symbiotic.flow.prune_weights import export_widths

    formats = {"u_x": "dense", "u_h": "dense", "w": "dense"}
    exported, record = export_widths(task, model, formats, "dense", torch.device("cpu"), 1, 1, 4, 2)
    assert record["shipped"] == "step_c" and record["thinned"] == record["step_c"] == model.widths()
    assert exported.layers[0].hidden_size == model.widths()["hidden.0"]


def test_step_d_times_both_widths_when_pruning_empties_a_unit(task, model):
    from symbiotic.flow.prune_weights import export_widths
    from symbiotic.sparsity.units import remove_units

    remove_units(model, "hidden.0", [0, 1])  # what weight pruning does to a unit it empties
    formats = {"u_x": "dense", "u_h": "dense", "w": "dense"}
    exported, record = export_widths(task, model, formats, "dense", torch.device("cpu"), 1, 1, 4, 2)
    assert record["step_c"]["hidden.0"] == 8 and record["thinned"]["hidden.0"] == 6
    assert record["shipped"] in ("step_c", "thinned") and record["step_c_ms"] > 0 and record["thinned_ms"] > 0
    assert exported.layers[0].hidden_size == record[record["shipped"]]["hidden.0"]
    x = torch.randint(0, task.vocab, (5, 2))
    assert torch.allclose(exported(x), model.eval()(x)[0], atol=1e-5)  # either export is exact


def test_metrics_report_the_dimensions_the_task_names(task, model):
    from symbiotic.flow.stage import describe

    assert describe(task, model)["dims"] == {"embed": 6, "hidden": [8], "gate_hidden": [5]}
    task.dims = ("hidden",)  # the task, not the stage, says which config keys are dimensions
    assert describe(task, model)["dims"] == {"hidden": [8]}


@pytest.fixture
def small(model):
    """Step (b)'s output: hidden units removed and thinned away (8 -> 5)."""
    _remove_smallest(model, "hidden.0", "ratio", 0.4)
    return thin(model)


def test_a_pool_wakes_the_candidate_with_the_largest_gradient_sum(task, small, monkeypatch):
    hidden = small.widths()["hidden.0"]
    strong = hidden + 1  # the middle one of three candidates (pool hidden + 3)

    def gradients(task, big, batches, seed):
        grads = {n: torch.zeros_like(p) for n, p in big.named_parameters()}
        grads["layers.0.u_h"][:, hidden:hidden + 3] = 1.0  # every candidate's column ...
        grads["layers.0.u_h"][:, strong] = 5.0  # ... and one with the largest sum
        return grads

    monkeypatch.setattr(flow_grow_lhp, "signed_gradients", gradients)
    target = {**small.widths(), "hidden.0": hidden + 1}
    pool = {**small.widths(), "hidden.0": hidden + 3}
    grown = flow_grow_lhp.grow_to(task, small, target, lr=0.1, seed=0, pool=pool)
    assert grown.widths() == target
    woken = grown.layers[0].u_h[:, hidden]  # the one grown column, initialised to -lr x gradient
    assert torch.allclose(woken[woken != 0], torch.tensor(-0.5))
    assert (woken != 0).any()


def test_a_pool_keeps_the_model_exact_after_thinning(task, small):
    target = {**small.widths(), "hidden.0": small.widths()["hidden.0"] + 1}
    pool = {**small.widths(), "hidden.0": SPEC["hidden"][0]}
    grown = flow_grow_lhp.grow_to(task, small, target, lr=1.0, seed=0, pool=pool).eval()
    x = torch.randint(0, task.vocab, (5, 2))
    assert torch.allclose(thin(grown).eval()(x)[0], grown(x)[0], atol=1e-5)


def test_decoder_phase_prunes_the_decoder_only_and_ships_it_by_the_crossover(task, model):
    from symbiotic.flow.prune_weights import PruneWeightsConfig, decoder_evidence, prune_weights, ship
    from symbiotic.sparsity.masks import output_sparsity

    trainer = Trainer(task, model, task.cfg)
    recurrent = {n: m.clone() for n, (_, m) in recurrent_masks(model).items()}
    cfg = PruneWeightsConfig(ratio=0.7, max_iterations=2, retrain_epochs=1, decoder=True, confirm_rounds=1)
    without = copy.deepcopy(model)
    log = prune_weights(task, model, trainer, cfg, Threshold(1e9), "valid", Resume(None, "t", {}, []), "decoder")
    assert [r["phase"] for r in log] == ["decoder", "decoder"] and all(r["accepted"] for r in log)
    assert output_sparsity(model) == pytest.approx(1 - 0.3 * 0.3, abs=0.01)  # 70% of the rest, twice
    for name, (_, mask) in recurrent_masks(model).items():
        assert torch.equal(mask, recurrent[name]), "the decoder phase changed a recurrent mask"
    profile = {"batch": 2, "seq_len": 4, "sparse_crossover": {"u_x": None, "u_h": None, "w": None, "decoder": 0.8}}
    exported, shipped = ship(task, model, profile, cfg, torch.device("cpu"), 1)
    assert shipped["decoder_format"] == "csr" and exported.decoder_format == "csr"
    evidence = decoder_evidence(task, without, exported, profile, torch.device("cpu"), 1, 1, shipped)
    assert evidence["decoder_density_without"] == 1.0 and evidence["full_ms_with"] > 0
    assert evidence["test_perplexity_without"] == pytest.approx(task.score(without, "test"))
