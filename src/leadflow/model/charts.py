"""Evaluation charts: calibration curves, cumulative gains and conversion per score band, one
line or bar per scorer, as a PNG (matplotlib, no display needed) and a self-contained HTML page
that embeds it with the figures as tables."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

LABELS = {
    "predictive": "predictive model",
    "rules": "rule model",
    "naive_bayes": "naive Bayes",
    "logistic_regression": "logistic regression",
}


def png(evaluation: dict[str, dict[str, Any]], title: str = "leadflow model evaluation") -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (cal, gain, bands) = plt.subplots(1, 3, figsize=(16, 5))
    cal.plot([0, 1], [0, 1], color="#bbb", linestyle="--", label="perfect")
    gain.plot([0, 100], [0, 1], color="#bbb", linestyle="--", label="random")
    names = list(evaluation)
    width = 0.8 / max(1, len(names))
    for k, name in enumerate(names):
        fig_data = evaluation[name]
        label = f"{LABELS.get(name, name)} (AUC {fig_data.get('auc') or 0:.3f})"
        curve = fig_data["calibration"]
        cal.plot([c["predicted"] for c in curve], [c["observed"] for c in curve], marker="o", label=label)
        deciles = fig_data["deciles"]
        gain.plot(
            [0, *[d["decile"] * 10 for d in deciles]],
            [0, *[d["captured"] or 0 for d in deciles]],
            marker=".",
            label=label,
        )
        rates = [b["rate"] or 0 for b in fig_data["bands"]]
        bands.bar([i + k * width for i in range(len(rates))], rates, width=width, label=LABELS.get(name, name))
    cal.set(title="calibration", xlabel="predicted probability", ylabel="observed conversion", xlim=(0, 1), ylim=(0, 1))
    gain.set(title="cumulative gains", xlabel="% of leads, highest scores first", ylabel="share of conversions")
    first = next(iter(evaluation.values()))
    bands.set_xticks([i + 0.4 - width / 2 for i in range(len(first["bands"]))], [b["band"] for b in first["bands"]])
    bands.set(title="conversion per score band", xlabel="score", ylabel="conversion rate")
    for ax in (cal, gain, bands):
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return buffer.getvalue()


def html_page(evaluation: dict[str, dict[str, Any]], title: str = "leadflow model evaluation") -> str:
    image = base64.b64encode(png(evaluation, title)).decode()
    rows = "".join(
        f"<tr><td>{html.escape(LABELS.get(n, n))}</td><td>{f.get('auc')}</td><td>{f.get('log_loss')}</td>"
        f"<td>{f.get('brier')}</td><td>{f.get('leads')}</td></tr>"
        for n, f in evaluation.items()
    )
    first = next(iter(evaluation.values()))
    lift = "".join(
        "<tr><td>{}</td>{}</tr>".format(
            d["decile"],
            "".join(
                f"<td>{evaluation[n]['deciles'][i]['lift']} / {evaluation[n]['deciles'][i]['captured']}</td>"
                for n in evaluation
                if i < len(evaluation[n]["deciles"])
            ),
        )
        for i, d in enumerate(first["deciles"])
    )
    heads = "".join(f"<th>{html.escape(LABELS.get(n, n))}</th>" for n in evaluation)
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ddd;padding:4px 10px;text-align:right}}</style></head>
<body><h1>{html.escape(title)}</h1>
<table><tr><th>scorer</th><th>AUC</th><th>log loss</th><th>Brier</th><th>leads</th></tr>{rows}</table>
<img alt="calibration, gains and conversion per band" src="data:image/png;base64,{image}" style="max-width:100%">
<h2>Lift / share of conversions captured, by decile</h2>
<table><tr><th>decile</th>{heads}</tr>{lift}</table>
</body></html>
"""


def write(evaluation: dict[str, dict[str, Any]], path: Path, title: str = "leadflow model evaluation") -> Path:
    if path.suffix.lower() == ".png":
        path.write_bytes(png(evaluation, title))
    else:
        path.write_text(html_page(evaluation, title), encoding="utf-8")
    return path
