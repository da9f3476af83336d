"""grow_lhp: step (c), grow rows/columns to the target device's latency hysteresis points."""

from pathlib import Path

from symbiotic.cli import run
from symbiotic.config import load_params
from symbiotic.flow.grow_lhp import (GrowLHPConfig, compare_sparse, confirm, decide, grow_to, lhp_targets,
                                     load_profile)
from symbiotic.flow.stage import Context, score_line, write
from symbiotic.hardware.measure import default_threads, resolve_device
from symbiotic.training import checkpoint
from symbiotic.training.loop import Trainer

from _args import training_parser


def main(argv=None):
    p = training_parser(__doc__)
    p.add_argument("--input", type=Path, required=True, help="step (b)'s thinned checkpoint")
    p.add_argument("--fallback", type=Path, required=True, help="step (a)'s checkpoint (the sparse path's)")
    p.add_argument("--profile", type=Path, required=True, help="the target device's profile folder")
    args = p.parse_args(argv)
    params = load_params(args.params)
    ctx = Context("grow_lhp", args.task, params, args.data, args.resume_dir)
    cfg = ctx.cfg(GrowLHPConfig, "grow_lhp")
    device = resolve_device(params.get("device"))
    profile, latency = load_profile(args.profile)
    decision = decide(cfg, profile)
    task = ctx.task()
    threads = default_threads()
    extra = {"decision": decision}
    source, ckpt, model = _load(task, args.input)
    full = _load(task, args.fallback)
    if decision["mode"] == "sparse":
        keep = "full"
        if full[2].widths() != model.widths():  # row pruning removed something: time both
            extra["compare"] = compare_sparse(task, full[2], model, profile.get("sparse_crossover", {}),
                                              cfg.reachable_sparsity, device, threads, cfg.confirm_rounds,
                                              profile["seq_len"], profile["batch"])
            keep = extra["compare"]["faster"] if cfg.sparse_widths == "faster" else "full"
        if keep == "full":
            source, ckpt, model = full
    extra["source"] = str(source)
    trainer = Trainer(task, model, task.cfg, lr=ckpt["meta"].get("lr"))
    if decision["mode"] == "dense":
        targets = lhp_targets(latency, model.widths(), task.profile_dims, full[2].widths(), cfg.lhp_choice)
        target = {key: t["candidate"] for key, t in targets.items()}
        check = confirm(task, model, target, device, threads, cfg.confirm_rounds,
                        profile["seq_len"], profile["batch"])
        extra.update({"targets": targets, "confirm": check})
        if check["keep"] == "candidate" and any(w != model.widths()[k] for k, w in target.items()):
            model = grow_to(task, model, target, trainer.lr, task.cfg.seed)
            trainer = Trainer(task, model, task.cfg, lr=trainer.lr)
            for _ in range(cfg.retrain_epochs):
                trainer.epoch(tag="grow_lhp")
    result = write(ctx, task, model, trainer, args.model, args.metrics, args.history, extra)
    print(f"grow_lhp {args.task}: mode {decision['mode']} ({decision['reason']}); "
          f"widths {model.widths()} from {source}, {score_line(task, result)}")


def _load(task, path: Path):
    ckpt = checkpoint.load(path)
    return path, ckpt, task.model_from_checkpoint(ckpt, str(path))


if __name__ == "__main__":
    run(main)
