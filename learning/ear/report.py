"""EAR's report, produced by one command: train (or resume) every model and seed, hold conversations, plot.

For each scenario (binary, enumerated) and seed, under `<out_dir>/<scenario>/`:
`fm/seed<n>` (EAR's attribute-aware FM), `fm-plain/seed<n>` (the plain FM of CRM and always-recommend, as
the authors' baselines use it), `policy-ear/seed<n>` and `policy-crm/seed<n>` (REINFORCE after imitation of
the max-entropy rule). A finished run is kept, an interrupted one resumes. Then every method holds the same
`eval_pairs` conversations (test targets drawn with the seed), and `eval/seed<n>.json` keeps the figures.

Methods (the issue's baselines and the paper's ablation): always recommend (Abs-Greedy), max-entropy asking,
CRM (its state is the known attributes: a perfect belief tracker; no reflection), EAR without reflection,
and EAR. The authors evaluate their rule baselines with reflection on; so does this report.

Written to `<out_dir>/report.json`, `report.md` and `success_by_turn.png`: success rate by turn (SR@t) and
average turns (AT), mean and 95 % t-interval over seeds, and the paper's claim (EAR above CRM at SR@15 with
fewer turns) checked by paired differences over seeds. A smoke run writes under runs/ear/smoke.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ear.configs import ConversationConfig, FMConfig, PolicyConfig
from ear.data import SCENARIOS, ScenarioName
from runkit import format_table, save_figure, write_json_atomic, write_text_atomic
from runkit.config import require_config, shrink_defaults, smoke_requested
from runkit.reports import mean_t_interval, to_jsonable

if TYPE_CHECKING:
    from ear.conversation import StateKind

METHODS = ("always recommend", "max entropy", "CRM", "EAR without reflection", "EAR")


@dataclass
class ReportConfig:
    """Train every model on every seed (resuming), hold the same test conversations with every method, report."""

    scenarios: tuple[ScenarioName, ...] = SCENARIOS
    """Question scenarios."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """Seeds of every training run and of the drawn test conversations."""
    eval_pairs: int = 1000
    """Test conversations (user, held-out target) per scenario and seed, the same for every method."""
    fm_epochs: int = 50
    """Epochs of each FM."""
    pretrain_episodes: int = 2000
    """Max-entropy conversations each policy imitates first."""
    policy_episodes: int = 6000
    """REINFORCE conversations of each policy."""
    out_dir: Path = field(default_factory=lambda: Path("runs/ear/report"))
    """Report folder: report.json, report.md, the plot, and every run's folder."""
    smoke: bool = False
    """Shrink every size left at its default so the report takes a minute (also SMOKE_TEST=1)."""
    torch_threads: int = 1
    """Threads of torch's CPU work."""
    progress: bool = True
    """Show progress bars."""

    def __post_init__(self) -> None:
        for scenario in self.scenarios:
            require_config(scenario in SCENARIOS, "scenarios", scenario, f"each one of {SCENARIOS}")
        require_config(len(self.seeds) >= 1, "seeds", self.seeds, "at least one seed")
        for name in ("eval_pairs", "fm_epochs", "policy_episodes"):
            require_config(getattr(self, name) >= 1, name, getattr(self, name), ">= 1")
        require_config(self.pretrain_episodes >= 0, "pretrain_episodes", self.pretrain_episodes, ">= 0")

    def resolved(self) -> ReportConfig:
        """The smoke rule applied (a smoke report never writes over a real one)."""
        if not smoke_requested(self.smoke):
            return self
        sizes = {
            "seeds": (0,),
            "eval_pairs": 40,
            "fm_epochs": 2,
            "pretrain_episodes": 40,
            "policy_episodes": 60,
            "out_dir": Path("runs/ear/smoke"),
        }
        return shrink_defaults(replace(self, smoke=True), sizes)


def _train_fm(report: ReportConfig, scenario: ScenarioName, seed: int, attribute_aware: bool) -> Path:
    from ear.fm import train_fm

    name = "fm" if attribute_aware else "fm-plain"
    run_dir = report.out_dir / scenario / name / f"seed{seed}"
    model = run_dir / "fm.pt"
    if model.is_file():
        return model
    config = FMConfig(
        seed=seed,
        run_dir=run_dir,
        resume=(run_dir / "checkpoint.pt").is_file(),
        scenario=scenario,
        attribute_aware=attribute_aware,
        epochs=report.fm_epochs,
        torch_threads=report.torch_threads,
        progress=report.progress,
        smoke=report.smoke,
    )
    if report.smoke:
        config = replace(config, dim=16, eval_users=30)
    return train_fm(config)


def _train_policy(report: ReportConfig, scenario: ScenarioName, seed: int, kind: str, fm: Path) -> Path:
    from ear.policy import train_policy

    run_dir = report.out_dir / scenario / f"policy-{kind}" / f"seed{seed}"
    model = run_dir / "policy.pt"
    if model.is_file():
        return model
    config = PolicyConfig(
        seed=seed,
        run_dir=run_dir,
        resume=(run_dir / "checkpoint.pt").is_file(),
        fm=fm,
        kind="ear" if kind == "ear" else "crm",
        pretrain_episodes=report.pretrain_episodes,
        episodes=report.policy_episodes,
        checkpoint_every=max(1, min(1000, report.policy_episodes)),
        torch_threads=report.torch_threads,
        progress=report.progress,
        smoke=report.smoke,
    )
    if report.smoke:
        config = replace(config, pretrain_epochs=1)
    return train_policy(config)


def evaluate_seed(report: ReportConfig, scenario: ScenarioName, seed: int) -> dict[str, Any]:
    """Train (or reuse) this seed's models and hold its test conversations with every method."""
    out = report.out_dir / scenario / "eval" / f"seed{seed}.json"
    if out.is_file():
        import json

        return dict(json.loads(out.read_text(encoding="utf-8")))
    from ear.conversation import AlwaysRecommend, MaxEntropy, NetworkPolicy, evaluate
    from ear.data import dataset_of_model, draw_pairs
    from ear.fm import load_fm
    from ear.policy import load_policy

    fm_path = _train_fm(report, scenario, seed, attribute_aware=True)
    plain_path = _train_fm(report, scenario, seed, attribute_aware=False)
    ear_path = _train_policy(report, scenario, seed, "ear", fm_path)
    crm_path = _train_policy(report, scenario, seed, "crm", plain_path)
    fm, meta = load_fm(fm_path)
    plain_fm, _ = load_fm(plain_path)
    dataset = dataset_of_model(meta)
    pairs = draw_pairs(dataset.interactions.test, report.eval_pairs, seed)
    ear_net, _ = load_policy(ear_path)
    crm_net, _ = load_policy(crm_path)
    with_reflection = ConversationConfig(reflection=True)
    without = ConversationConfig(reflection=False)
    runs: list[tuple[str, Any, Any, ConversationConfig, StateKind]] = [
        ("always recommend", AlwaysRecommend(), plain_fm, with_reflection, "ear"),
        ("max entropy", MaxEntropy(), fm, with_reflection, "ear"),
        ("CRM", NetworkPolicy(crm_net), plain_fm, without, "crm"),
        ("EAR without reflection", NetworkPolicy(ear_net), fm, without, "ear"),
        ("EAR", NetworkPolicy(ear_net), fm, with_reflection, "ear"),
    ]
    figures: dict[str, Any] = {"scenario": scenario, "seed": seed, "pairs": len(pairs), "methods": {}}
    for name, policy, model, conversation, state_kind in runs:
        result = evaluate(
            dataset, model, policy, pairs, conversation, seed=seed, state_kind=state_kind, progress=report.progress
        )
        figures["methods"][name] = {
            "success_by_turn": [float(x) for x in result.success_by_turn],
            "sr15": float(result.success_rate),
            "average_turns": float(result.average_turns),
        }
    write_json_atomic(out, to_jsonable(figures))
    return figures


def summarise(per_seed: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Per scenario and method: SR@t curve, SR@15 and AT (mean and 95 % t-interval over seeds); the claim."""
    summary: dict[str, Any] = {}
    for scenario, seeds in per_seed.items():
        methods: dict[str, Any] = {}
        for method in METHODS:
            rows = [s["methods"][method] for s in seeds]
            curves = np.array([r["success_by_turn"] for r in rows])
            methods[method] = {
                "sr15": mean_t_interval([r["sr15"] for r in rows]),
                "average_turns": mean_t_interval([r["average_turns"] for r in rows]),
                "success_by_turn": [mean_t_interval(curves[:, k]) for k in range(curves.shape[1])],
            }
        sr_gain = [s["methods"]["EAR"]["sr15"] - s["methods"]["CRM"]["sr15"] for s in seeds]
        turn_gain = [s["methods"]["CRM"]["average_turns"] - s["methods"]["EAR"]["average_turns"] for s in seeds]
        reflection_gain = [s["methods"]["EAR"]["sr15"] - s["methods"]["EAR without reflection"]["sr15"] for s in seeds]
        claim = {
            "ear_minus_crm_sr15": mean_t_interval(sr_gain),
            "crm_minus_ear_turns": mean_t_interval(turn_gain),
            "reflection_gain_sr15": mean_t_interval(reflection_gain),
        }
        both = (claim["ear_minus_crm_sr15"], claim["crm_minus_ear_turns"])
        shown = len(seeds) > 1 and all(mean - half > 0 for mean, half in both)
        summary[scenario] = {
            "seeds": [s["seed"] for s in seeds],
            "pairs": seeds[0]["pairs"],
            "methods": methods,
            "claim": {**claim, "ear_beats_crm_shown": shown},
        }
    return summary


def _markdown(report: ReportConfig, summary: dict[str, Any]) -> str:
    lines = [
        "# EAR on MovieLens-100k",
        "",
        f"Seeds {list(report.seeds)}; {report.eval_pairs} test conversations per seed and scenario; FMs "
        f"{report.fm_epochs} epochs; policies {report.pretrain_episodes} imitation + {report.policy_episodes} "
        "REINFORCE conversations. Mean ± 95 % t-interval over seeds.",
        "",
    ]
    for scenario, block in summary.items():
        rows = []
        for method, figures in block["methods"].items():
            curve = figures["success_by_turn"]
            rows.append(
                [method]
                + [f"{curve[t - 1][0]:.3f} ± {curve[t - 1][1]:.3f}" for t in (5, 10)]
                + [f"{figures['sr15'][0]:.3f} ± {figures['sr15'][1]:.3f}"]
                + [f"{figures['average_turns'][0]:.2f} ± {figures['average_turns'][1]:.2f}"]
            )
        claim = block["claim"]
        gain, turns, reflection = (
            claim["ear_minus_crm_sr15"],
            claim["crm_minus_ear_turns"],
            claim["reflection_gain_sr15"],
        )
        verdict = "shown" if claim["ear_beats_crm_shown"] else "not shown"
        lines += [
            f"## {scenario} questions ({block['pairs']} conversations per seed)",
            "",
            format_table(["method", "SR@5", "SR@10", "SR@15", "AT"], rows),
            "",
            f"EAR - CRM at SR@15: {gain[0]:+.3f} ± {gain[1]:.3f}; CRM - EAR in turns: {turns[0]:+.2f} ± "
            f"{turns[1]:.2f}: the paper's claim (higher success in fewer turns) is **{verdict}** here. "
            f"Reflection's gain at SR@15: {reflection[0]:+.3f} ± {reflection[1]:.3f}.",
            "",
        ]
    lines.append("![success by turn](success_by_turn.png)")
    return "\n".join(lines) + "\n"


def _plot(summary: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(summary), figsize=(5.5 * len(summary), 4), squeeze=False)
    for ax, (scenario, block) in zip(axes[0], summary.items(), strict=True):
        for method, figures in block["methods"].items():
            curve = np.array(figures["success_by_turn"])
            turns = np.arange(1, len(curve) + 1)
            ax.plot(turns, curve[:, 0], label=method)
            low, high = np.clip(curve[:, 0] - curve[:, 1], 0, 1), np.clip(curve[:, 0] + curve[:, 1], 0, 1)
            ax.fill_between(turns, low, high, alpha=0.15)  # a rate's interval, clipped to [0, 1]
        ax.set_title(f"{scenario} questions")
        ax.set_xlabel("turn")
        ax.set_ylabel("success rate by this turn")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def build_report(config: ReportConfig) -> dict[str, Any]:
    """Train, hold the conversations, write report.json, report.md and the plot; return the summary."""
    report = config.resolved()
    per_seed: dict[str, list[dict[str, Any]]] = {
        scenario: [evaluate_seed(report, scenario, seed) for seed in report.seeds] for scenario in report.scenarios
    }
    summary = summarise(per_seed)
    content = {"config": to_jsonable(report), "summary": summary, "per_seed": per_seed}
    write_json_atomic(report.out_dir / "report.json", to_jsonable(content))
    write_text_atomic(report.out_dir / "report.md", _markdown(report, summary))
    _plot(summary, report.out_dir / "success_by_turn.png")
    return summary
