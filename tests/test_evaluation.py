"""The downstream harness (`rnn_weightspace.evaluation`): targets read correctly from a real zoo, the OOD protocol's
splits, predictors that recover a known answer (and only from informative embeddings), the paper's losses and the
secondary metrics against direct computations, intervals that cover what they claim, summaries over encoder seeds
(not predictor seeds), the rollout-statistics oracle, the trained stratum and the early-stopped supervised baseline."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from scipy.stats import kendalltau
from scipy.stats import t as student_t

from rnn_weightspace.core import RNNWSError
from rnn_weightspace.evaluation import (STRATA, Target, _fit_supervised, _task_set, circular_error, downstream_views,
                                        evaluate_embeddings, fit_predictor, mean_ci, oracle_features, reference_embeddings,
                                        results_table, score, summarize, target_loss, targets_for, train_supervised)


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
    assert {k: (v.primary, v.train_loss) for k, v in t.items()} == {"task": ("bce", "bce"), "accuracy": ("mse", "mse"),
                                                                     "step": ("ce", "ce")}
    tm = targets_for(mn)
    assert set(tm) == {"angle", "accuracy", "step", "gap"}
    assert {k: v.primary for k, v in tm.items()} == {"angle": "mse", "accuracy": "mse", "step": "ce", "gap": "mse"}
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
    rg = evaluate_embeddings(zoo, good, seeds=(0,), targets=["step"], predictors=["linear", "mlp"], strata=["all"])
    rg = rg.query("split == 'test'")
    assert (rg[rg.metric == "accuracy"].value == 1.0).all(), rg
    v = downstream_views(zoo)
    fit_lab, test_lab = t["task"].read(v["fit"].metadata), t["task"].read(v["test"].metadata)
    seen = [i for i in range(3) if set(test_lab[:, i]) <= set(fit_lab[:, i])]
    assert seen, "no offset of the test tasks occurs in training: the zoo is too small for this test"
    # an embedding that holds offset i only (a feature never seen in training gets untrained weights); the other two
    # offsets are noise to it, so choosing the epochs on the whole 3-hot loss would stop early: train the fixed epochs
    for i in seen:
        r = evaluate_embeddings(zoo, np.eye(6)[task[:, i]] + noise(6), seeds=(0,), targets=["task"], predictors=["linear", "mlp"],
                                strata=["all"], select_epochs=False)
        name = ("m_b", "m_c", "m_d")[i]
        assert (r.query("split == 'test'").query(f"metric == 'accuracy_{name}'").value == 1.0).all(), (i, r)
    z = evaluate_embeddings(zoo, np.zeros((len(zoo), 4)), seeds=(0,), targets=["step"], predictors=["mlp"], strata=["all"])
    z = z.query("split == 'test'")
    assert z[z.metric == "accuracy"].value.max() < 0.5
    assert z[z.metric == "ce"].value.min() > rg[rg.metric == "ce"].value.max()
    with pytest.raises(RNNWSError, match="embeddings for a zoo of"):
        evaluate_embeddings(zoo, good[:-1])
    with pytest.raises(RNNWSError, match="unknown strata"):
        evaluate_embeddings(zoo, good, strata=["untrained"])


def test_metrics_against_direct_computation():
    rng = np.random.default_rng(1)
    y, p = rng.normal(size=40), rng.normal(size=40)
    s = score(Target("a", "regression", None), p[:, None], y)
    assert s["mse"] == pytest.approx(np.mean((p - y) ** 2))
    assert s["r2"] == pytest.approx(1 - np.mean((p - y) ** 2) / np.var(y))
    assert s["kendall_tau"] == pytest.approx(kendalltau(p, y).statistic)
    assert circular_error(np.array([1.0]), np.array([359.0]))[0] == pytest.approx(2.0)
    deg = rng.uniform(0, 360, size=30)
    sc = rng.normal(size=(30, 2))
    a = score(Target("angle", "angle", None), sc, deg)
    assert a["mse"] == pytest.approx(np.mean((sc - np.stack([np.sin(np.radians(deg)), np.cos(np.radians(deg))], 1)) ** 2))
    assert a["circular_error"] == pytest.approx(np.mean(circular_error(np.degrees(np.arctan2(sc[:, 0], sc[:, 1])), deg)))
    step = Target("step", "classes", None, (4,), "ce")
    logits, lab = rng.normal(size=(25, 4)), rng.integers(0, 4, size=25)
    ls = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    st = score(step, logits, lab)
    assert st["ce"] == pytest.approx(-ls[np.arange(25), lab].mean())
    assert st["accuracy"] == pytest.approx((logits.argmax(1) == lab).mean())


def test_three_hot_bce_against_direct_computation(zoos):
    "The task target: BCE-with-logits on the 3-hot vector (mean over 18 outputs), exact and per-offset accuracies."
    t = targets_for(zoos["fl"])["task"]
    rng = np.random.default_rng(2)
    lab = rng.integers(0, 6, size=(50, 3))
    logits = rng.normal(size=(50, 18)) * 3
    hot = np.zeros((50, 18))
    for i in range(3): hot[np.arange(50), 6 * i + lab[:, i]] = 1
    assert hot.sum(1).tolist() == [3.0] * 50
    direct_bce = np.mean(np.maximum(logits, 0) - logits * hot + np.log1p(np.exp(-np.abs(logits))))
    right = np.stack([logits[:, 6 * i:6 * i + 6].argmax(1) == lab[:, i] for i in range(3)], 1)
    s = score(t, logits, lab)
    assert s["bce"] == pytest.approx(direct_bce, rel=1e-12)
    assert s["exact_accuracy"] == pytest.approx(right.all(1).mean())
    assert [s["accuracy_m_b"], s["accuracy_m_c"], s["accuracy_m_d"]] == pytest.approx(right.mean(0).tolist())
    assert s["accuracy"] == pytest.approx(right.mean())
    # the training loss is the same quantity
    loss = target_loss(t, torch.tensor(logits, dtype=torch.float64), torch.tensor(lab))
    assert float(loss) == pytest.approx(direct_bce, rel=1e-9)
    assert float(F.binary_cross_entropy_with_logits(torch.tensor(logits), torch.tensor(hot))) == pytest.approx(direct_bce, rel=1e-12)


@pytest.mark.parametrize("n", [3, 5, 15])
def test_mean_ci_coverage(n):
    """The Student-t interval of `mean_ci` covers the true mean of normal samples 95% of the time (20,000 samples:
    standard error 0.0015); the percentile bootstrap it replaced covered about 0.76 at n = 3."""
    samples = np.random.default_rng(n).normal(loc=1.5, scale=2.0, size=(20_000, n))
    cover = np.mean([lo <= 1.5 <= hi for lo, hi in map(mean_ci, samples)])
    assert 0.93 <= cover <= 0.97, cover


def test_mean_ci_formula():
    v = np.array([0.3, 0.1, 0.7, 0.4])
    half = student_t.ppf(0.975, 3) * v.std(ddof=1) / 2
    assert mean_ci(v) == pytest.approx((v.mean() - half, v.mean() + half))
    assert mean_ci(v, level=0.9)[1] - v.mean() == pytest.approx(student_t.ppf(0.95, 3) * v.std(ddof=1) / 2)
    assert all(math.isnan(x) for x in mean_ci([1.0])) and all(math.isnan(x) for x in mean_ci([]))


def test_no_pseudo_replication():
    """Predictor seeds that vary widely within 3 encoder seeds: n is 3 and the interval is the t interval of the three
    per-encoder-seed means (not of the 30 values); a row without an encoder seed is one unit."""
    rng = np.random.default_rng(3)
    rows = []
    for e in (0, 1, 2):
        for p in range(10):
            rows.append({"encoder": "x", "encoder_seed": e, "seed": p, "target": "task", "predictor": "mlp", "split": "test",
                         "metric": "bce", "value": 0.5 + 0.1 * e + rng.normal() * 0.5})
    rows.append({"encoder": "x", "encoder_seed": 2, "seed": 99, "target": "task", "predictor": "mlp", "split": "test",
                 "metric": "bce", "value": np.nan})                                     # a NaN value is skipped
    rows += [{"encoder": "chance (zeros)", "seed": p, "target": "task", "predictor": "mlp", "split": "test", "metric": "bce",
              "value": 0.45 + 0.01 * p} for p in range(4)]                              # no encoder seed: a row is a unit
    df = pd.DataFrame(rows)
    s = summarize(df).set_index("encoder")
    per_seed = df[df.encoder == "x"].groupby("encoder_seed")["value"].mean().to_numpy()
    assert s.loc["x", "n"] == 3
    assert s.loc["x", "mean"] == pytest.approx(per_seed.mean())
    assert (s.loc["x", "ci_low"], s.loc["x", "ci_high"]) == pytest.approx(mean_ci(per_seed))
    naive = mean_ci(df[df.encoder == "x"].value.dropna())
    assert naive[1] - naive[0] < s.loc["x", "ci_high"] - s.loc["x", "ci_low"]          # what pseudo-replication would claim
    assert s.loc["chance (zeros)", "n"] == 4
    assert (s.loc["chance (zeros)", "ci_low"], s.loc["chance (zeros)", "ci_high"]) == pytest.approx(mean_ci([0.45, 0.46, 0.47, 0.48]))
    tab = results_table(summarize(df), "formal-languages")
    lo, hi = mean_ci(per_seed)
    assert tab.loc["x", "n"] == "3" and tab.loc["x", "task (bce ↓)"] == f"{per_seed.mean():.3f} [{lo:.3f}, {hi:.3f}]"


def test_results_table_layout():
    rows = [{"encoder": e, "encoder_seed": s, "target": t, "predictor": "mlp", "split": sp, "metric": m, "value": v, "seed": 0,
             "stratum": st}
            for e in ("dws", "flat")
            for (t, m) in (("task", "bce"), ("task", "exact_accuracy"), ("accuracy", "mse"), ("accuracy", "kendall_tau"), ("step", "ce"),
                           ("step", "accuracy"))
            for s, v in enumerate((0.1, 0.2, 0.3)) for sp in ("test", "val") for st in ("all", STRATA["trained"][0])]
    summ = summarize(pd.DataFrame(rows))
    tab = results_table(summ, "formal-languages")
    assert list(tab.index) == ["dws", "flat"]
    assert list(tab.columns) == ["n", "task (bce ↓)", "accuracy (mse ↓)", "step (ce ↓)"]
    assert tab.loc["dws", "task (bce ↓)"].startswith("0.200 [") and tab.loc["dws", "n"] == "3"
    assert "held-out OOD tasks" in tab.attrs["caption"]
    full = results_table(summ, "formal-languages", metrics="all", split="val", stratum="trained")
    assert list(full.columns) == ["n", "task (bce ↓)", "task (exact_accuracy ↑)", "accuracy (mse ↓)", "accuracy (kendall_tau ↑)",
                                  "step (ce ↓)", "step (accuracy ↑)"]
    assert "validation tasks" in full.attrs["caption"] and "accuracy ≥ 0.5" in full.attrs["caption"]
    assert list(results_table(summ, "formal-languages", metrics=["exact_accuracy"]).columns) == ["n", "task (exact_accuracy ↑)"]


def test_oracle_features(zoos):
    fl, mn = zoos["fl"], zoos["mnist"]
    o = oracle_features(fl)
    assert o.shape == (len(fl), 5) and o.dtype == np.float32 and np.isfinite(o).all()
    eos = fl.manifest["task_family"]["tokens"]["eos"]
    tok = fl.rollouts[np.arange(len(fl))]["tokens"].numpy()                              # [N, R, S]
    direct = np.zeros((len(fl), 5))
    for i in range(len(fl)):
        for r in tok[i]:
            end = list(r).index(eos) if eos in r else len(r)
            direct[i, :4] += [(r[:end] == k).sum() for k in range(4)]
            direct[i, 4] += eos in r
    np.testing.assert_allclose(o, direct / tok.shape[1], rtol=1e-6)
    np.testing.assert_allclose(oracle_features(fl[5:9]), o[5:9])                          # a view: its own rows, in order
    np.testing.assert_allclose(oracle_features(fl, batch_size=7), o)
    m = oracle_features(mn)
    assert m.shape == (len(mn), 49 * 16 + 10) and np.isfinite(m).all()
    r = mn.rollouts[np.arange(len(mn))]
    np.testing.assert_allclose(m[:, :784], r["inputs"][:, :, 1:].double().mean(1).flatten(1).numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(m[:, 784:].sum(1), 1.0, atol=1e-2)                         # a class distribution (fp16 log-probs)
    ref = reference_embeddings(fl)
    assert set(ref) == {"chance (zeros)", "oracle (rollout statistics)"} and (ref["chance (zeros)"] == 0).all()


def _with_accuracy(zoo, acc):
    "A view of all of `zoo` whose metadata records accuracies `acc` (the fixture zoo itself is left alone)."
    v = zoo[np.arange(len(zoo))]
    v._table = v._table.copy()
    v._table["accuracy"] = acc
    return v


def test_trained_stratum(zoos):
    """The trained stratum fits and scores only checkpoints with accuracy >= 0.5: embeddings that are NaN on every
    other checkpoint give finite results there (and NaN in the "all" stratum), and its numbers equal fitting on the
    trained `fit` checkpoints and scoring the trained `test`/`val` ones directly."""
    fl = zoos["fl"]
    md = fl.metadata
    acc = np.where(md.checkpoint > 0, 0.9, 0.1)                                         # trained after the first checkpoint
    acc[np.flatnonzero(acc > 0.5)[:2]] = 0.5                                              # the boundary belongs to the stratum
    zoo = _with_accuracy(fl, acc)
    views = downstream_views(zoo)
    assert all((v.metadata.accuracy >= 0.5).sum() >= 2 for v in views.values()), "too few trained checkpoints per split"
    rng = np.random.default_rng(4)
    Z = rng.normal(size=(len(zoo), 6))
    Z[acc < 0.5] = np.nan
    r = evaluate_embeddings(zoo, Z, seeds=(0,), predictors=["mlp"], targets=["accuracy", "step"], epochs=30, strata=["trained"])
    assert set(r.stratum) == {"trained (accuracy ≥ 0.5)"} and set(r.split) == {"fit", "test", "val"}
    assert np.isfinite(r[r.metric.isin(["mse", "ce", "accuracy"])].value).all(), r
    a = evaluate_embeddings(zoo, Z, seeds=(0,), predictors=["mlp"], targets=["step"], epochs=30, strata=["all"])
    assert a[a.metric == "ce"].value.isna().all()
    t = targets_for(zoo)["step"]
    sel = {k: v.metadata.accuracy.to_numpy() >= 0.5 for k, v in views.items()}
    pos = {k: np.searchsorted(zoo.rows, v.rows[sel[k]]) for k, v in views.items()}
    fmd = views["fit"].metadata[sel["fit"]]
    p = fit_predictor(t, Z[pos["fit"]], t.read(fmd), epochs=30, seed=0, groups=fmd.task.tolist())
    for split in ("test", "val"):
        want = score(t, p.predict(Z[pos[split]]), t.read(views[split].metadata[sel[split]]))
        got = r[(r.target == "step") & (r.split == split)].set_index("metric").value
        assert got["ce"] == pytest.approx(want["ce"]) and got["accuracy"] == pytest.approx(want["accuracy"])


def test_predictor_epochs_are_chosen_on_held_out_groups():
    "With groups, the epochs are those with the lowest loss on held-out groups; without, all of them."
    rng = np.random.default_rng(5)
    X = rng.normal(size=(120, 30))
    y = rng.integers(0, 3, size=120)                                                    # pure noise: overfitting only hurts
    t = Target("c", "classes", None, (3,), "ce")
    assert fit_predictor(t, X, y, epochs=200).epochs == 200
    p = fit_predictor(t, X, y, epochs=200, groups=np.arange(120) // 6)
    assert 1 <= p.epochs < 200
    with pytest.raises(RNNWSError, match="groups"):
        fit_predictor(t, X, y, groups=[0, 1])


def test_supervised_early_stopping(zoos):
    """On an easy problem (the checkpoint's step from layer-wise statistics), training stops well before the cap, and
    the restored weights are the best ones: their validation loss is the best one seen."""
    zoo = zoos["fl"]
    r = train_supervised(zoo, "layerwise-stats", "step", steps=3000, lr=3e-3, eval_every=5, patience=3, seed=0)
    fit = r[r.split == "fit"].set_index("metric").value
    assert fit["steps"] < 3000 and fit["best_step"] == fit["steps"] - 3 * 5
    val_ce = r[(r.split == "val") & (r.metric == "ce")].value.item()
    assert val_ce == pytest.approx(fit["early_stopping_val_loss"], rel=1e-4)            # scored with the restored weights
    t = targets_for(zoo)["step"]
    res = _fit_supervised(zoo, "layerwise-stats", t, "tiny", 3000, 3e-3, 32, 0, torch.device("cpu"), 5, 3)
    val = downstream_views(zoo)["val"]
    again = float(target_loss(t, res.predict(val, torch.device("cpu")), torch.as_tensor(t.read(val.metadata))[:, None]))
    assert again == pytest.approx(res.best_val_loss, rel=1e-5) and res.steps == fit["steps"] and res.best_step == fit["best_step"]
    assert set(r[r.split == "test"].metric) == {"ce", "accuracy"}
    with pytest.raises(RNNWSError, match="patience"):
        train_supervised(zoo, "layerwise-stats", "step", patience=0)
