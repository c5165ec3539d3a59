"""`python -m launch.report RUN_DIR`: a run's `report.html`, rendered from its files.

Plots (inline SVG, no plotting library): validation 1@3 over iterations from the
evaluation before training on, beside the share solved at the first turn (the gap is what
feedback adds); the repair (what turns 2.. add) with execution feedback and with random
feedback at the first and the last evaluation, whose difference is what the feedback's
content is worth; the training reward; the training solve rate by turn; KL to the
reference; and where each iteration's time went (generation, of it the sandbox's share,
training, weight sync). Then a few dialogs of the last iteration, solved and failed,
turn by turn.
"""

from __future__ import annotations

import html
import sys
from pathlib import Path

from launch.run_files import ROLLOUTS_DIR, read_eval_before, read_metrics

REPORT_FILE = "report.html"
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd")
WIDTH, HEIGHT, MARGIN = 520, 240, 44
"""Plot area of a chart, with its margin for the axes' labels."""
LEGEND_WIDTH = 190
"""Room right of the plot for the series' names."""


def line_chart(title: str, series: dict[str, list[tuple[float, float]]], percent=False) -> str:
    """An SVG chart of named (x, y) series; a series of one point is drawn as a dot."""
    points = [p for values in series.values() for p in values]
    if not points:
        return f"<figure><figcaption>{html.escape(title)}: no data</figcaption></figure>"
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    y0, y1 = min(min(ys), 0.0), max(ys) if max(ys) > min(min(ys), 0.0) else min(ys) + 1

    def sx(x):
        return MARGIN + (x - x0) / (x1 - x0) * (WIDTH - 2 * MARGIN)

    def sy(y):
        return HEIGHT - MARGIN + (y0 - y) / (y1 - y0) * (HEIGHT - 2 * MARGIN)

    def label(y):
        return f"{100 * y:.0f}%" if percent else f"{y:.3g}"

    parts = [
        f'<svg width="{WIDTH + LEGEND_WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH + LEGEND_WIDTH} {HEIGHT}">',
        f'<line x1="{MARGIN}" y1="{HEIGHT - MARGIN}" x2="{WIDTH - MARGIN}" '
        f'y2="{HEIGHT - MARGIN}" stroke="#888"/>',
        f'<line x1="{MARGIN}" y1="{MARGIN}" x2="{MARGIN}" y2="{HEIGHT - MARGIN}" stroke="#888"/>',
    ]
    for y in (y0, (y0 + y1) / 2, y1):
        parts.append(
            f'<text x="{MARGIN - 4}" y="{sy(y) + 4:.1f}" font-size="10" '
            f'text-anchor="end">{label(y)}</text>'
        )
    for x in (x0, x1):
        parts.append(
            f'<text x="{sx(x):.1f}" y="{HEIGHT - MARGIN + 14}" font-size="10" '
            f'text-anchor="middle">{x:g}</text>'
        )
    parts.append(
        f'<text x="{WIDTH / 2}" y="{HEIGHT - 8}" font-size="10" text-anchor="middle">'
        "iteration</text>"
    )
    for index, (name, values) in enumerate(series.items()):
        colour = COLOURS[index % len(COLOURS)]
        coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in values)
        if len(values) > 1:
            parts.append(
                f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{coords}"/>'
            )
        for x, y in values:
            parts.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.5" fill="{colour}"/>')
        parts.append(
            f'<text x="{WIDTH - MARGIN + 4}" y="{MARGIN + 14 * index}" font-size="11" '
            f'fill="{colour}">{html.escape(name)}</text>'
        )
    parts.append("</svg>")
    return f"<figure>{''.join(parts)}<figcaption>{html.escape(title)}</figcaption></figure>"


def _series(metrics: list[dict], key: str) -> list[tuple[float, float]]:
    return [(m["iteration"], m[key]) for m in metrics if m.get(key) is not None]


def validation_series(
    metrics: list[dict], before: tuple[float, dict] | None
) -> dict[str, list[tuple[float, float]]]:
    """Validation 1@3 and the share solved at turn 1, per evaluated iteration, starting
    at iteration 0 with the evaluation before training when there is one."""
    one_at_three = _series(metrics, "eval_1at3")
    first_turn = _series(metrics, "eval_solve_rate_turn_1")
    if before is not None:
        solved, turns = before
        one_at_three.insert(0, (0, solved))
        if "solve_rate_turn_1" in turns:
            first_turn.insert(0, (0, turns["solve_rate_turn_1"]))
    return {"1@3": one_at_three, "solved at turn 1": first_turn}


def repair_series(
    metrics: list[dict], before: tuple[float, dict] | None
) -> dict[str, list[tuple[float, float]]]:
    """The repair (solved by the last turn minus by the first, on validation) with
    execution and with random feedback, and their gap, at the evaluations that played
    both (iteration 0: before training)."""
    keys = {
        "execution feedback": "repair",
        "random feedback": "repair_random",
        "gap": "repair_gap",
    }
    series = {name: _series(metrics, f"eval_{key}") for name, key in keys.items()}
    if before is not None and "repair_gap" in before[1]:
        for name, key in keys.items():
            series[name].insert(0, (0, before[1][key]))
    return series


def _dialogs(run_dir: Path, count: int) -> str:
    """A few dialogs of the last iteration: solved ones after feedback first."""
    import pyarrow.parquet as pq

    files = sorted((run_dir / ROLLOUTS_DIR).glob("iter-*.parquet"))
    if not files:
        return "<p>No rollouts written.</p>"
    rows = pq.read_table(files[-1]).to_pylist()
    rows.sort(key=lambda row: (not row["passed"], -len(row["turns"])))
    chosen = rows[: count // 2] + [row for row in rows if not row["passed"]][: count - count // 2]
    blocks = []
    for row in chosen:
        verdict = "solved" if row["passed"] else "failed"
        turns = []
        for number, turn in enumerate(row["turns"], start=1):
            tests = "passed" if turn["tests_passed"] else "did not pass"
            turns.append(
                f"<h4>turn {number} (reward {turn['reward']:+.1f}, weights "
                f"v{turn['weight_version']}, {tests} the feedback tests)</h4>"
                f"<pre>{html.escape(turn['reply'])}</pre>"
                + (
                    f"<pre class=feedback>{html.escape(turn['feedback'])}</pre>"
                    if turn["feedback"]
                    else ""
                )
            )
        blocks.append(
            f"<details><summary>{html.escape(row['problem'])}: {verdict} in "
            f"{len(row['turns'])} turn(s)</summary>{''.join(turns)}</details>"
        )
    return f"<p>From {files[-1].name}.</p>" + "".join(blocks)


def write_report(run_dir: str | Path, dialogs: int = 6) -> Path:
    """Render `report.html` in `run_dir` from its metrics and rollouts; its path."""
    run_dir = Path(run_dir)
    metrics = read_metrics(run_dir)
    if not metrics:
        raise FileNotFoundError(f"{run_dir} has no metrics.jsonl: is it a training run folder?")
    turns = sorted(k for k in metrics[0] if k.startswith("solve_rate_turn_"))
    charts = [
        line_chart(
            "Validation 1@3 (iteration 0: before training) and the share solved at turn 1",
            validation_series(metrics, read_eval_before(run_dir)),
            percent=True,
        ),
        line_chart(
            "Repair on validation (solved by the last turn minus by turn 1), by feedback",
            repair_series(metrics, read_eval_before(run_dir)),
            percent=True,
        ),
        line_chart(
            "Mean episode reward (training rollouts)",
            {"reward": _series(metrics, "reward_mean")},
        ),
        line_chart(
            "Training rollouts solved by the end of turn t",
            {k.replace("solve_rate_", "").replace("_", " "): _series(metrics, k) for k in turns},
            percent=True,
        ),
        line_chart("KL to the reference (mean per token)", {"kl_ref": _series(metrics, "kl_ref")}),
        line_chart(
            "Seconds per iteration",
            {
                "generation": _series(metrics, "time_generate_s"),
                "sandbox (share of generation)": [
                    (m["iteration"], m["time_generate_s"] * m.get("sandbox_share", 0))
                    for m in metrics
                ],
                "training": _series(metrics, "time_train_s"),
                "weight sync": _series(metrics, "time_sync_s"),
            },
        ),
    ]
    last = metrics[-1]
    table = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{v:.4g}</td></tr>"
        if isinstance(v, float)
        else f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>"
        for k, v in last.items()
    )
    title = html.escape(run_dir.name)
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>RLEF run {title}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}
figure{{display:inline-block;margin:0.5em}}
pre{{background:#f6f6f6;padding:0.5em;white-space:pre-wrap}} pre.feedback{{background:#fff4e5}}
td{{padding:0 1em 0 0}}</style></head><body>
<h1>RLEF run: {html.escape(str(run_dir))}</h1>
<p>{len(metrics)} iterations. Validation 1@3: rollouts of up to 3 turns at temperature 0.2,
top-p 0.95, the share whose final program passes all tests (the paper's metric); the
turn curves count rollouts solved (all tests) by the end of that turn. The sandbox runs
inside the generation phase; its curve is the share of episode time spent in it.</p>
{"".join(charts)}
<h2>Last iteration</h2><table>{table}</table>
<h2>Dialogs</h2>{_dialogs(run_dir, dialogs)}
</body></html>"""
    path = run_dir / REPORT_FILE
    path.write_text(page)
    return path


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m launch.report RUN_DIR", file=sys.stderr)
        return 2
    try:
        print(f"report: {write_report(args[0])}")
    except FileNotFoundError as exc:
        print(f"report: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
