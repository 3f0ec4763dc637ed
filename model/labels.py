"""Score (1..10) <-> class index maps.

`classes: 10` (default, as the paper states): class = score - 1.
`classes: 8` (the public MIMN code's map): classes are the scores {1,2,3,4,5,6,8,10}; that data set had
no 7 or 9. Here a 7 or a 9 goes to the next listed score up (7 -> 8, 9 -> 10), matching the
round-half-up convention of the clean stage; the checkpoint stores the map, so predictions are
reported as the listed score of the predicted class.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SCORES_10: tuple[int, ...] = tuple(range(1, 11))
SCORES_8: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 8, 10)


@dataclass(frozen=True)
class LabelMap:
    class_scores: tuple[int, ...]  # class index -> the score it stands for

    @classmethod
    def for_classes(cls, classes: int) -> LabelMap:
        if classes == 10:
            return cls(SCORES_10)
        if classes == 8:
            return cls(SCORES_8)
        raise ValueError(f"classes must be 10 or 8, got {classes!r}")

    @property
    def num_classes(self) -> int:
        return len(self.class_scores)

    def score_to_class(self, score: int) -> int:
        """The class of a score 1..10 (a score between two listed scores goes to the higher one)."""
        if not 1 <= int(score) <= 10:
            raise ValueError(f"score must be 1..10, got {score!r}")
        return next(i for i, s in enumerate(self.class_scores) if s >= int(score))

    def scores_to_classes(self, scores) -> np.ndarray:
        return np.array([self.score_to_class(s) for s in scores], dtype=np.int64)

    def classes_to_scores(self, classes) -> np.ndarray:
        table = np.array(self.class_scores, dtype=np.int64)
        return table[np.asarray(classes, dtype=np.int64)]

    def to_dict(self) -> dict:
        return {"class_scores": list(self.class_scores)}

    @classmethod
    def from_dict(cls, data: dict) -> LabelMap:
        return cls(tuple(int(s) for s in data["class_scores"]))
