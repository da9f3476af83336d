"""prune_weights: step (d), magnitude weight pruning; exports the fastest form for the device."""

import copy
from pathlib import Path

from symbiotic import io
from symbiotic.cli import run
from symbiotic.config import load_params
from symbiotic.flow.common import check_some_accepted
from symbiotic.flow.prune_weights import PruneWeightsConfig, decoder_evidence, prune_weights, ship
from symbiotic.flow.stage import Context, load_step, score_line, threshold_from, write
from symbiotic.sparsity.masks import output_sparsity
from symbiotic.training.loop import Trainer

from _args import training_parser


def main(argv=None):
    p = training_parser(__doc__)
    p.add_argument("--input", type=Path, required=True, help="step (c)'s checkpoint")
    p.add_argument("--baseline", type=Path, required=True, help="baseline metrics JSON (threshold)")
    p.add_argument("--profile", type=Path, required=True, help="the target device's profile folder")
    p.add_argument("--export", type=Path, required=True, help="inference export to write")
    p.add_argument("--log", type=Path, required=True, help="iteration CSV to write")
    args = p.parse_args(argv)
    params = load_params(args.params)
    ctx = Context("prune_weights", args.task, params, args.data, args.resume_dir, curves_dir=args.curves)
    threshold, tcfg = threshold_from(ctx, args.baseline)
    cfg = ctx.cfg(PruneWeightsConfig, "prune_weights")
    loaded, device, threads = ctx.target(args.profile)  # the export targets the device: fail early
    profile = loaded.doc
    task = ctx.task()
    start = load_step(task, args.input)
    model = start.model
    trainer = Trainer(task, model, task.cfg, lr=start.lr)
    sections, inputs = ["train", "prune_weights", "threshold"], [args.input, args.baseline]
    resume = ctx.resume(sections, inputs)
    log = prune_weights(task, model, trainer, cfg, threshold, tcfg.split, resume)
    without, resume_decoder = None, None
    if cfg.decoder:  # a second phase on the decoder alone; the model before it is kept for the evidence
        without = copy.deepcopy(model)
        resume_decoder = ctx.resume(sections, inputs, phase="decoder")
        log += prune_weights(task, model, trainer, cfg, threshold, tcfg.split, resume_decoder, "decoder")
    outcome = check_some_accepted("prune_weights", args.task, log, threshold, tcfg.split, cfg.if_none_accepted)

    exported, shipped = ship(task, model, profile, cfg, device, threads)
    if without is not None:
        shipped["decoder"] = decoder_evidence(task, without, exported, profile, device, threads,
                                              cfg.confirm_rounds, shipped)
    if ctx.world.writer:
        io.save_tensors(task.inference_state(exported), args.export)
    extra = {"threshold": threshold.bound, "iterations": len(log),
             "accepted": sum(r["accepted"] for r in log), **outcome, "decoder_density": 1.0 - output_sparsity(model),
             **shipped, "profile_mismatch": loaded.mismatch}
    formats, widths = shipped["formats"], shipped["widths"]
    result = write(ctx, task, model, trainer, args.model, args.metrics, args.history, extra, log, args.log)
    for r in (resume, resume_decoder):
        if r is not None:
            r.finish()
    print(f"prune_weights {args.task}: density {result['recurrent_density']:.3f} "
          f"(decoder {result['decoder_density']:.3f}, {shipped['decoder_format']}), formats {formats}, "
          f"widths {widths[widths['shipped']]} ({widths['shipped']}), "
          f"{score_line(task, result)} (threshold {threshold.bound:.2f})"
          + ("; NO iteration was accepted: the input is passed through" if outcome["passed_through"] else ""))


if __name__ == "__main__":
    run(main)
