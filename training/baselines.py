"""The floor every report is measured against: the training prior, and TF-IDF (character 1–3-grams) + logistic
regression on the label distributions. Same calls, same targets, same metrics as the model. Turn heads get the same
two, per turn: the prior of the head's turns, and TF-IDF of the turn's text plus its position in the call."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from callqa.calls import Call
from callqa.heads import LevelKind, MultilabelKind, registered
from callqa.render import RenderSpec, render_call
from callqa.schema import Head, LabelSchema
from callqa.scorer import turn_targets


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
    for head in schema.turn_heads:
        q = turn_targets(train, head)
        out[head.name] = np.tile(q[q.sum(-1) > 0].mean(0), (sum(len(c.turns) for c in test), 1))
    return out


def fit_distribution(x_train, q: np.ndarray, x_test, C: float) -> np.ndarray:
    """Logistic regression on soft targets: one training row per class a row has votes for, weighted by that class's
    share — maximum likelihood on the distributions. Rows of ``q`` that are all zero are left out."""
    keep = np.flatnonzero(q.sum(-1) > 0)
    rows, cls = np.nonzero(q[keep] > 0)
    model = LogisticRegression(C=C, max_iter=2000)
    model.fit(x_train[keep[rows]], cls, sample_weight=q[keep][rows, cls])
    pred = np.zeros((x_test.shape[0], q.shape[1]))
    pred[:, model.classes_] = model.predict_proba(x_test)
    return pred


def _turn_features(calls: list[Call]) -> tuple[list[str], sp.csr_matrix]:
    """Each turn's text, and its position: first, second, last, or in between (nuggets depend on it)."""
    texts, position = [], []
    for call in calls:
        n = len(call.turns)
        for i, turn in enumerate(call.turns):
            texts.append(turn.text)
            position.append([i == 0, i == 1, i == n - 1, 0 < i < n - 1])
    return texts, sp.csr_matrix(np.array(position, dtype=np.float64).reshape(-1, 4))


def turn_tfidf_lr(train: list[Call], test: list[Call], head: Head, C: float = 2.0) -> np.ndarray:
    """[turns of test, C] a turn head's TF-IDF + position logistic regression, trained on the head's turns."""
    vec = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), min_df=2, sublinear_tf=True, max_features=200_000)
    train_text, train_pos = _turn_features(train)
    test_text, test_pos = _turn_features(test)
    x_train = sp.hstack([vec.fit_transform(train_text), train_pos]).tocsr()
    x_test = sp.hstack([vec.transform(test_text), test_pos]).tocsr()
    return fit_distribution(x_train, turn_targets(train, head), x_test, C)


def fit_labels(x_train, q: np.ndarray, x_test, C: float) -> np.ndarray:
    """One logistic regression per label (a label every call has, or none has, predicts its base rate)."""
    keep = np.flatnonzero(q.sum(-1) > 0)
    pred = np.zeros((x_test.shape[0], q.shape[1]))
    for j in range(q.shape[1]):
        y = q[keep, j] > 0.5
        if y.all() or not y.any():
            pred[:, j] = float(y.mean())
            continue
        model = LogisticRegression(C=C, max_iter=2000).fit(x_train[keep], y)
        pred[:, j] = model.predict_proba(x_test)[:, 1]
    return pred


# How TF-IDF + LR fits a head, by kind (callqa.heads.registered: a subclass inherits its base's).
FITS = {LevelKind: fit_distribution, MultilabelKind: fit_labels}


def tfidf_lr(train: list[Call], test: list[Call], schema: LabelSchema, C: float = 2.0) -> dict[str, np.ndarray]:
    """Character 1–3-gram TF-IDF + logistic regression.

    Distributions are learned by :func:`fit_distribution`; multilabel heads: one binary regression per class; turn
    heads: :func:`turn_tfidf_lr`.
    """
    spec = RenderSpec()
    vec = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), min_df=2, sublinear_tf=True, max_features=200_000)
    x_train = vec.fit_transform([render_call(c, spec) for c in train])
    x_test = vec.transform([render_call(c, spec) for c in test])
    train_targets = targets(train, schema)
    out = {}
    for head in schema.heads:
        out[head.name] = registered(FITS, head.spec)(x_train, train_targets[head.name], x_test, C)
    for head in schema.turn_heads:
        out[head.name] = turn_tfidf_lr(train, test, head, C)
    return out
