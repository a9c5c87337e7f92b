"""Accuracy, macro-F1 and the confusion matrix of a classifier, as every report here shows them."""

from dataclasses import asdict, dataclass

from sklearn.metrics import accuracy_score, confusion_matrix, f1_score


@dataclass(frozen=True)
class ClassificationScores:
    examples: int
    accuracy: float
    macro_f1: float
    labels: list[str]
    # confusion[i][j]: examples of labels[i] predicted as labels[j]
    confusion: list[list[int]]

    def as_dict(self) -> dict:
        return asdict(self)


def score(truth: list[str], predicted: list[str], labels: list[str]) -> ClassificationScores:
    if len(truth) != len(predicted) or not truth:
        raise ValueError("truth and predictions must be non-empty and of equal length")
    return ClassificationScores(
        examples=len(truth),
        accuracy=float(accuracy_score(truth, predicted)),
        macro_f1=float(f1_score(truth, predicted, labels=labels, average="macro")),
        labels=list(labels),
        confusion=confusion_matrix(truth, predicted, labels=labels).tolist(),
    )
