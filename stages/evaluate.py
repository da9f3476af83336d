"""evaluate: test score, parameters and measured latency of every step (the paper's Tables 1 and 4)."""

from pathlib import Path

from symbiotic import io
from symbiotic.cli import parser, run
from symbiotic.config import load_params
from symbiotic.flow.evaluate import EvaluateConfig, evaluate, plot, summary
from symbiotic.flow.stage import Context, load_step
from symbiotic.hardware.measure import default_threads, fingerprint, fingerprint_key, resolve_device
from symbiotic.hardware.report import measured_on


def main(argv=None):
    p = parser(__doc__)
    p.add_argument("task", help="a task of symbiotic.tasks.TASKS (ptb, an4, ptb_char)")
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--models", type=Path, required=True, help="folder with <step>.pt checkpoints")
    p.add_argument("--export", type=Path, required=True, help="the final model's inference export")
    p.add_argument("--table", type=Path, required=True, help="steps CSV to write")
    p.add_argument("--summary", type=Path, required=True, help="summary metrics JSON to write")
    p.add_argument("--plot", type=Path, required=True, help="latency/score chart to write")
    p.add_argument("--profile", type=Path, required=True, help="the profile the steps used (its machine is recorded)")
    args = p.parse_args(argv)
    params = load_params(args.params)
    ctx = Context("evaluate", args.task, params, args.data, None, trains=False)
    cfg = ctx.cfg(EvaluateConfig, "evaluate")
    device = resolve_device(params.get("device"))
    task = ctx.task()
    models = {step: load_step(task, args.models / f"{step}.pt", hlstm=step != "baseline").model
              for step in ("baseline", "grow", "prune_rows", "grow_lhp", "final")}
    exported = task.load_inference(io.read_tensors(args.export, "inference export",
                                                   "rerun the prune_weights stage that writes it (dvc repro)"))
    threads = cfg.threads or default_threads()
    table = evaluate(task, models, exported, device, threads, cfg)
    result = summary(table, task.metric)
    fp = fingerprint(device, threads)
    result.update({"device": params.get("device"), "threads": threads, "fingerprint": fingerprint_key(fp),
                   "profile_fingerprint": measured_on(args.profile, args.task), "seconds": ctx.seconds()})
    io.save_csv(table, args.table)
    io.save_json(result, args.summary)
    plot(table, task.metric, args.plot, f"{args.task} on {fp.get('gpu_name') or fp.get('cpu_model')}")
    print(table.to_string(index=False))
    print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in result.items()})


if __name__ == "__main__":
    run(main)
