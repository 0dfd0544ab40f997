"""The downstream harness (`rnn_weightspace.evaluation`): targets read correctly from a real zoo, the OOD protocol's
splits, predictors that recover a known answer (and only from informative embeddings), metrics and CIs against
direct computations."""

import numpy as np
import pytest
from scipy.stats import kendalltau

from rnn_weightspace.core import RNNWSError
from rnn_weightspace.evaluation import (_task_set, circular_error, downstream_views, evaluate_embeddings, results_table, score,
                                        summarize, targets_for)
from rnn_weightspace.training import bootstrap_ci


@pytest.fixture(scope="module")
def zoos(small_zoos):
    return small_zoos


def test_targets_read_the_metadata(zoos):
    fl, mn = zoos["fl"], zoos["mnist"]
    md = fl.metadata
    t = targets_for(fl)
    assert set(t) == {"task", "accuracy", "step"}
    np.testing.assert_array_equal(t["task"].read(md), np.array(md["task"].tolist())[:, 1:] + 3)
    np.testing.assert_array_equal(t["step"].read(md), md["checkpoint"].to_numpy())
    assert t["step"].n_classes == (3,) and t["task"].n_classes == (6, 6, 6)
    tm = targets_for(mn)
    assert set(tm) == {"angle", "accuracy", "step", "gap"}
    np.testing.assert_allclose(tm["gap"].read(mn.metadata), mn.metadata["eval_loss"] - mn.metadata["train_loss"], atol=1e-9)
    np.testing.assert_allclose(tm["angle"].read(mn.metadata), mn.metadata["angle"])


@pytest.mark.parametrize("kind", ["fl", "mnist"])
def test_protocol_splits(zoos, kind):
    zoo = zoos[kind]
    v = downstream_views(zoo)
    fit, test, val = (_task_set(v[k]) for k in ("fit", "test", "val"))
    ood, train = _task_set(zoo.split("ood")), _task_set(zoo.split("train"))
    assert not (fit & test) and not (fit & val) and not (test & val)
    assert test | (fit & ood) == ood and fit - ood == train and val == _task_set(zoo.split("val"))
    assert abs(len(test) - len(ood) / 2) <= 0.5
    assert len(v["fit"]) + len(v["test"]) + len(v["val"]) == len(zoo)


def test_known_answer_is_recovered(zoos):
    """Embeddings that encode the answer predict it on the held-out OOD tasks: the training step exactly, and every
    task offset whose value occurs among the fitted tasks (a value never seen in training cannot be predicted);
    zeros stay at chance."""
    zoo = zoos["fl"]
    t = targets_for(zoo)
    rng = np.random.default_rng(0)
    task, step = t["task"].read(zoo.metadata), t["step"].read(zoo.metadata)
    noise = lambda d: 0.05 * rng.normal(size=(len(zoo), d))
    good = np.eye(3)[step] + noise(3)
    r = evaluate_embeddings(zoo, good, seeds=(0,), targets=["step"], predictors=["linear", "mlp"]).query("split == 'test'")
    assert (r[r.metric == "accuracy"].value == 1.0).all(), r
    v = downstream_views(zoo)
    fit_lab, test_lab = t["task"].read(v["fit"].metadata), t["task"].read(v["test"].metadata)
    seen = [i for i in range(3) if set(test_lab[:, i]) <= set(fit_lab[:, i])]
    assert seen, "no offset of the test tasks occurs in training: the zoo is too small for this test"
    for i in seen:  # an embedding that holds offset i only (a feature never seen in training gets untrained weights)
        r = evaluate_embeddings(zoo, np.eye(6)[task[:, i]] + noise(6), seeds=(0,), targets=["task"], predictors=["linear", "mlp"])
        assert (r.query("split == 'test'").query(f"metric == 'accuracy_head{i}'").value == 1.0).all(), (i, r)
    z = evaluate_embeddings(zoo, np.zeros((len(zoo), 4)), seeds=(0,), targets=["step"], predictors=["mlp"]).query("split == 'test'")
    assert z[z.metric == "accuracy"].value.max() < 0.5
    with pytest.raises(RNNWSError, match="embeddings for a zoo of"):
        evaluate_embeddings(zoo, good[:-1])


def test_metrics_against_direct_computation():
    rng = np.random.default_rng(1)
    y, p = rng.normal(size=40), rng.normal(size=40)
    from rnn_weightspace.evaluation import Target
    s = score(Target("a", "regression", None), p[:, None], y)
    assert s["mse"] == pytest.approx(np.mean((p - y) ** 2))
    assert s["r2"] == pytest.approx(1 - np.mean((p - y) ** 2) / np.var(y))
    assert s["kendall_tau"] == pytest.approx(kendalltau(p, y).statistic)
    assert circular_error(np.array([1.0]), np.array([359.0]))[0] == pytest.approx(2.0)
    v = rng.normal(size=7)
    lo, hi = bootstrap_ci(v, seed=3)
    boots = v[np.random.default_rng(3).integers(0, 7, size=(2000, 7))].mean(1)
    assert (lo, hi) == pytest.approx(tuple(np.quantile(boots, [0.025, 0.975])))


def test_summary_table_layout():
    import pandas as pd
    rows = [{"encoder": e, "target": t, "predictor": "mlp", "split": "test", "metric": m, "value": v, "seed": s}
            for e in ("dws", "flat") for (t, m) in (("task", "exact_accuracy"), ("task", "accuracy"), ("accuracy", "kendall_tau"), ("step", "accuracy"))
            for s, v in enumerate((0.1, 0.2, 0.3))]
    tab = results_table(summarize(pd.DataFrame(rows)), "formal-languages")
    assert list(tab.index) == ["dws", "flat"]
    assert list(tab.columns) == ["task (exact_accuracy)", "task (accuracy)", "accuracy (kendall_tau)", "step (accuracy)"]
    assert tab.loc["dws", "task (exact_accuracy)"].startswith("0.200 [")
