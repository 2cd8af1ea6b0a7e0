"""The floor every report is measured against: the training prior, and TF-IDF (character 1–3-grams) + logistic
regression on the label distributions. Same calls, same targets, same metrics as the model."""

from __future__ import annotations

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from callqa.calls import Call
from callqa.render import RenderSpec, render_call
from callqa.schema import LabelSchema


def targets(calls: list[Call], schema: LabelSchema) -> dict[str, np.ndarray]:
    """Per head [N, C] targets; all-zero rows where a call lacks the head (metrics leave those out)."""
    out = {}
    for head in schema.heads:
        rows = [head.target(c.labels.get(head.name)) for c in calls]
        out[head.name] = np.stack([r if r is not None else np.zeros(head.size, np.float32) for r in rows])
    return out


def prior(train: list[Call], test: list[Call], schema: LabelSchema) -> dict[str, np.ndarray]:
    """Every call gets the mean training target (class distribution, or topic rates)."""
    out = {}
    for name, q in targets(train, schema).items():
        mean = q[q.sum(-1) > 0].mean(0)
        out[name] = np.tile(mean, (len(test), 1))
    return out


def tfidf_lr(train: list[Call], test: list[Call], schema: LabelSchema, C: float = 2.0) -> dict[str, np.ndarray]:
    """Character 1–3-gram TF-IDF + logistic regression.

    Distributions are learned by giving each call one training row per class it has votes for, weighted by that
    class's share — maximum likelihood on the soft targets. Multilabel heads: one binary regression per class.
    """
    spec = RenderSpec()
    vec = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), min_df=2, sublinear_tf=True, max_features=200_000)
    x_train = vec.fit_transform([render_call(c, spec) for c in train])
    x_test = vec.transform([render_call(c, spec) for c in test])
    train_targets = targets(train, schema)
    out = {}
    for head in schema.heads:
        q = train_targets[head.name]
        keep = np.flatnonzero(q.sum(-1) > 0)
        pred = np.zeros((len(test), head.size))
        if head.spec.multilabel:
            for j in range(head.size):
                y = q[keep, j] > 0.5
                if y.all() or not y.any():
                    pred[:, j] = float(y.mean())
                    continue
                model = LogisticRegression(C=C, max_iter=2000).fit(x_train[keep], y)
                pred[:, j] = model.predict_proba(x_test)[:, 1]
        else:
            rows, cls = np.nonzero(q[keep] > 0)
            model = LogisticRegression(C=C, max_iter=2000)
            model.fit(x_train[keep[rows]], cls, sample_weight=q[keep][rows, cls])
            pred[:, model.classes_] = model.predict_proba(x_test)
        out[head.name] = pred
    return out
