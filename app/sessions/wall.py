"""The presenter's wall: what each student sent, what the model read, and for labelled
images (a digit the student says they drew) a confusion table: rows what the class meant,
columns what the model read. The prediction comes from the stored run, never from the
student's page."""

from __future__ import annotations

from typing import Any


def entry(
    entry_id: str, meta: dict[str, Any], label: str | None, name: str | None, created: float
) -> dict[str, Any]:
    """A wall entry for a stored run's metadata (app/runs.py)."""
    best = meta["top"][0]
    return {
        "id": entry_id,
        "run": meta["id"],
        "model": meta["model"],
        "prediction": best["class"],
        "probability": best["probability"],
        "label": label,
        "name": name,
        "created": created,
    }


def tally(entries: list[dict[str, Any]], classes: dict[str, list[str]]) -> list[dict[str, Any]]:
    """One confusion table per model that has labelled entries:
    counts[i][j] = entries labelled classes[i] that the model read as classes[j]."""
    tables = []
    for model in dict.fromkeys(e["model"] for e in entries if e.get("label") is not None):
        names = classes.get(model)
        if not names:
            continue
        index = {name: i for i, name in enumerate(names)}
        counts = [[0] * len(names) for _ in names]
        for e in entries:
            if e["model"] == model and e.get("label") in index and e["prediction"] in index:
                counts[index[e["label"]]][index[e["prediction"]]] += 1
        total = sum(map(sum, counts))
        correct = sum(counts[i][i] for i in range(len(names)))
        tables.append(
            {"model": model, "classes": names, "counts": counts, "total": total, "correct": correct}
        )
    return tables
