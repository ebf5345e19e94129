"""The ReLIC report, produced by one command: train (or resume) every variant and seed, evaluate, plot.

For each variant (ReLIC; without Sink-KV; without partial updates; the RL^2-style LSTM) and seed, the
run folder `<out_dir>/<env>/<variant>/seed<seed>` is trained to `total_steps` (a finished run is kept,
an interrupted one resumes), then its policy runs `eval_trials` held-out layouts for `eval_episodes`
episodes each. The report holds success and steps against the number of in-context episodes (mean and
a 95 % t-interval over seeds), and for ReLIC the few-shot imitation figure: success when one expert
demonstration episode is placed in context first, against none. The claims are checked on paired seeds:
that success rises in context (each variant's mean success over the second half of the episodes minus its
first episode's), and that ReLIC is above each other variant over the in-context episodes (episodes 2 on).
Written to `report.json`, `report.md` and PNG plots in `<out_dir>/<env>/` (a smoke run writes under
runs/relic/smoke, never over a real report).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from runkit import SUMMARY_FILE, format_table, save_figure, write_json_atomic, write_text_atomic
from runkit.config import shrink_defaults, smoke_requested
from runkit.reports import mean_t_interval

VARIANTS = ("relic", "relic-no-sink", "relic-no-partial", "rl2-lstm")


@dataclass
class ReportConfig:
    """Train every variant on every seed (resuming), evaluate on held-out layouts, write the report."""

    env: str = "darkroom"
    """Trial environment (relicnav name)."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """Training seeds of every variant."""
    variants: tuple[str, ...] = VARIANTS
    """Which methods to compare."""
    total_steps: int = 400_000
    """Training steps of each run."""
    rollout_steps: int = 1024
    """Trial length in training (steps per environment per rollout)."""
    updates_per_rollout: int = 16
    """Partial updates per rollout of the variants that use them (the no-partial variant: 1)."""
    learning_rate: float = 2e-4
    """Adam's learning rate after warm-up."""
    warmup_steps: int = 10_000
    """Warm-up steps of the learning rate."""
    eval_trials: int = 20
    """Held-out layouts evaluated."""
    eval_episodes: int = 8
    """Episodes per held-out trial."""
    out_dir: Path = field(default_factory=lambda: Path("runs/relic/report"))
    """Report folder: <env>/report.json, report.md, PNGs, and each run's folder <env>/<variant>/seed<seed>."""

    smoke: bool = False
    """Shrink every size left at its default so the report takes seconds (also SMOKE_TEST=1)."""
    torch_threads: int = 1
    """Threads of torch's CPU work in each training run."""
    progress: bool = True
    """Show progress bars."""

    def resolved(self) -> ReportConfig:
        """The report actually made: the project's smoke rule applied."""
        if smoke_requested(self.smoke):
            return shrink_defaults(replace(self, smoke=True), self.smoke_sizes())
        return self

    def smoke_sizes(self) -> dict[str, Any]:
        """Seconds: one seed, two variants, tiny runs."""
        return {
            "seeds": (0,),
            "variants": ("relic", "rl2-lstm"),
            "total_steps": 256,
            "rollout_steps": 64,
            "updates_per_rollout": 4,
            "warmup_steps": 16,
            "eval_trials": 2,
            "eval_episodes": 2,
            "out_dir": Path("runs/relic/smoke"),
        }


def variant_config(report: ReportConfig, variant: str, seed: int) -> Any:
    """The training config of one variant and seed."""
    from relicrl.configs import RelicConfig

    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose from {VARIANTS}")
    base = RelicConfig(
        env=report.env,  # type: ignore[arg-type]
        seed=seed,
        total_steps=report.total_steps,
        rollout_steps=report.rollout_steps,
        updates_per_rollout=report.updates_per_rollout,
        learning_rate=report.learning_rate,
        warmup_steps=report.warmup_steps,
        progress=report.progress,
        torch_threads=report.torch_threads,
    )
    if report.smoke:
        base = replace(base, smoke=True)
    changes: dict[str, Any] = {  # type: ignore[assignment]
        "relic": {},
        "relic-no-sink": {"sink_kv": False},
        "relic-no-partial": {"updates_per_rollout": 1},
        "rl2-lstm": {"architecture": "lstm"},
    }[variant]
    config = replace(base, **changes).resolved()
    run_dir = report.out_dir / report.env / variant / f"seed{seed}"
    return replace(config, run_dir=run_dir)


def train_or_resume(config: Any) -> Path:
    """Train one run to the end (kept when finished, resumed when interrupted); the policy file's path."""
    from relicrl.trainer import CHECKPOINT_FILE, POLICY_FILE, train

    run_dir = Path(config.run_dir)
    if not (run_dir / SUMMARY_FILE).is_file():
        train(replace(config, resume=(run_dir / CHECKPOINT_FILE).is_file()))
    return run_dir / POLICY_FILE


def build_report(report: ReportConfig) -> dict[str, Any]:
    """Train, evaluate and write the report; return its JSON content."""
    from relicnav import trial_seeds
    from relicrl.checkpoint import load_policy
    from relicrl.evaluate import run_trials

    report = report.resolved()
    layouts = trial_seeds(report.env, "eval", report.eval_trials)
    results: dict[str, Any] = {}
    for variant in report.variants:
        per_seed = []
        for seed in report.seeds:
            config = variant_config(report, variant, seed)
            policy, _ = load_policy(train_or_resume(config))
            plain = run_trials(policy, report.env, layouts, report.eval_episodes, seed=seed)
            row: dict[str, Any] = {
                "seed": seed,
                "success_by_episode": plain.success_by_episode().tolist(),
                "steps_by_episode": plain.steps.mean(axis=0).tolist(),
                "return_by_episode": plain.returns.mean(axis=0).tolist(),
                "steps_to_goal_by_episode": plain.steps_to_goal.mean(axis=0).tolist(),
            }
            if variant == "relic":
                demo = run_trials(policy, report.env, layouts, report.eval_episodes, demo_episodes=1, seed=seed)
                row["few_shot"] = {
                    "with_demo_success": float(demo.success[:, 1].mean()),
                    "without_demo_success": float(plain.success[:, 0].mean()),
                    "with_demo_success_by_episode": demo.success_by_episode().tolist(),
                }
            per_seed.append(row)
        curves = np.array([row["success_by_episode"] for row in per_seed])
        steps = np.array([row["steps_by_episode"] for row in per_seed])
        episode_returns = np.array([row["return_by_episode"] for row in per_seed])
        to_goal = np.array([row["steps_to_goal_by_episode"] for row in per_seed])
        results[variant] = {
            "seeds": per_seed,
            "success_mean_ci": [mean_t_interval(curves[:, k]) for k in range(curves.shape[1])],
            "return_mean_ci": [mean_t_interval(episode_returns[:, k]) for k in range(episode_returns.shape[1])],
            "steps_mean": steps.mean(axis=0).tolist(),
            "steps_to_goal_mean_ci": [mean_t_interval(to_goal[:, k]) for k in range(to_goal.shape[1])],
        }
    payload = {
        "claims": in_context_claims({variant: data["seeds"] for variant, data in results.items()}),
        "env": report.env,
        "seeds": list(report.seeds),
        "total_steps": report.total_steps,
        "rollout_steps": report.rollout_steps,
        "updates_per_rollout": report.updates_per_rollout,
        "learning_rate": report.learning_rate,
        "eval_layouts": list(layouts),
        "eval_episodes": report.eval_episodes,
        "smoke": report.smoke,
        "results": results,
    }
    out = report.out_dir / report.env
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "report.json", payload)
    write_text_atomic(out / "report.md", _markdown(payload))
    _plot(payload, out)
    return payload


def in_context_claims(per_seed: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """The paper's claims on the curves of each variant's seeds (paired by seed position), with 95 % t-intervals.

    `gain[variant]`: mean success over the second half of the episodes minus the first episode's success.
    `relic_minus[variant]`: ReLIC's mean success over episodes 2 on minus the variant's, paired by seed.
    Each claim holds when its mean is above zero; `*_significant` when the interval excludes zero too.
    """
    curves = {variant: np.array([row["success_by_episode"] for row in rows]) for variant, rows in per_seed.items()}
    claims: dict[str, Any] = {"gain": {}, "relic_minus": {}}
    for variant, curve in curves.items():
        half = curve.shape[1] // 2
        mean, width = mean_t_interval(curve[:, half:].mean(axis=1) - curve[:, 0])
        claims["gain"][variant] = {"mean": mean, "ci95": [mean - width, mean + width]}
        claims[f"{variant}_rises_in_context"] = mean > 0
        claims[f"{variant}_rises_in_context_significant"] = mean - width > 0
    if "relic" in curves:
        relic = curves["relic"][:, 1:].mean(axis=1)
        for variant, curve in curves.items():
            if variant == "relic" or len(curve) != len(relic):
                continue
            mean, width = mean_t_interval(relic - curve[:, 1:].mean(axis=1))
            claims["relic_minus"][variant] = {"mean": mean, "ci95": [mean - width, mean + width]}
            claims[f"relic_above_{variant}"] = mean > 0
            claims[f"relic_above_{variant}_significant"] = mean - width > 0
    return claims


def _markdown(payload: dict[str, Any]) -> str:
    """The report as a table: success at each in-context episode index per variant (mean ± CI)."""
    results = payload["results"]
    episodes = payload["eval_episodes"]
    headers = ["variant", *[f"ep {k + 1}" for k in range(episodes)]]
    rows = [[variant, *[f"{m:.2f} ± {h:.2f}" for m, h in data["success_mean_ci"]]] for variant, data in results.items()]
    return_rows = [
        [variant, *[f"{m:.1f} ± {h:.1f}" for m, h in data["return_mean_ci"]]] for variant, data in results.items()
    ]
    to_goal_rows = [
        [variant, *[f"{m:.1f} ± {h:.1f}" for m, h in data["steps_to_goal_mean_ci"]]]
        for variant, data in results.items()
    ]
    text = [
        f"# ReLIC on {payload['env']}: success vs in-context episodes (held-out layouts)",
        "",
        f"Seeds {payload['seeds']}, {payload['total_steps']} training steps per run, trials of "
        f"{payload['rollout_steps']} steps; {len(payload['eval_layouts'])} held-out layouts x {episodes} episodes.",
        "",
        "Success (the episode reached its goal):",
        "",
        "```",
        format_table(headers, rows),
        "```",
        "",
        "Episode return:",
        "",
        "```",
        format_table(headers, return_rows),
        "```",
        "",
        "Steps to the goal (an episode that missed it counts all its steps):",
        "",
        "```",
        format_table(headers, to_goal_rows),
        "```",
    ]
    claims = payload["claims"]
    text += ["", "Claims (95 % t-intervals over seeds, paired by seed):", ""]
    for variant, gain in claims["gain"].items():
        low, high = gain["ci95"]
        text.append(
            f"- {variant}: success, second half of the episodes minus the first episode: "
            f"{gain['mean']:+.2f} [{low:+.2f}, {high:+.2f}]"
        )
    for variant, diff in claims["relic_minus"].items():
        low, high = diff["ci95"]
        text.append(f"- ReLIC minus {variant} over episodes 2 on: {diff['mean']:+.2f} [{low:+.2f}, {high:+.2f}]")
    if "relic" in results:
        shots = [row["few_shot"] for row in results["relic"]["seeds"]]
        with_demo = np.mean([s["with_demo_success"] for s in shots])
        without = np.mean([s["without_demo_success"] for s in shots])
        text += [
            "",
            f"Few-shot imitation (ReLIC): first own episode after one expert demonstration {with_demo:.2f}, "
            f"first episode without one {without:.2f}.",
        ]
    return "\n".join(text) + "\n"


def _plot(payload: dict[str, Any], out: Path) -> None:
    """success_vs_episodes.png: success and steps to goal per in-context episode, one line per variant, 95 % bands."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (success_axis, steps_axis) = plt.subplots(1, 2, figsize=(11, 4))
    for variant, data in payload["results"].items():
        for axis, key, upper in ((success_axis, "success_mean_ci", 1.0), (steps_axis, "steps_to_goal_mean_ci", None)):
            mean = np.array([m for m, _ in data[key]])
            half = np.array([h for _, h in data[key]])
            x = np.arange(1, len(mean) + 1)
            axis.plot(x, mean, marker="o", label=variant)
            axis.fill_between(x, np.clip(mean - half, 0, upper), np.clip(mean + half, 0, upper), alpha=0.2)
    for axis in (success_axis, steps_axis):
        axis.set_xlabel("episode in trial (earlier episodes in context)")
    success_axis.set_ylabel("success rate (held-out layouts)")
    success_axis.set_ylim(-0.02, 1.02)
    steps_axis.set_ylabel("steps to goal (a miss counts all its steps)")
    steps_axis.set_ylim(bottom=0)
    figure.suptitle(f"ReLIC on {payload['env']} ({len(payload['seeds'])} seeds)")
    success_axis.legend()
    save_figure(figure, out / "success_vs_episodes.png")
    plt.close(figure)


__all__ = ["VARIANTS", "ReportConfig", "build_report", "in_context_claims", "variant_config"]
