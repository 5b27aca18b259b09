"""Every figure: a real PNG with content, a readable size, labelled axes."""
import os

import matplotlib.image as mpimg
import numpy as np
import pytest

from bwkeras import plots


def check_png(path, min_w=800, min_h=500):
    assert os.path.getsize(path) > 5000
    with open(path, "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    img = mpimg.imread(path)
    h, w = img.shape[:2]
    assert w >= min_w and h >= min_h, f"{path}: {w}x{h} px is too small to read"
    gray = img[..., :3].mean(axis=2)
    # a blank or single-colour image has (almost) no variance; a drawn figure has lines,
    # text and fills covering a good part of it
    assert gray.std() > 0.05, f"{path} looks blank (pixel std {gray.std():.4f})"
    assert (gray < 0.9).mean() > 0.01, f"{path} has almost nothing drawn on it"
    assert not [p for p in os.listdir(os.path.dirname(path)) if ".tmp" in p]
    return img


def labels(fig):
    return [(ax.get_xlabel(), ax.get_ylabel()) for ax in fig.axes if ax.get_visible()]


def test_loss_curves(tmp_path):
    history = {"loss": [4.0, 2.0, 1.0, 0.7], "val_loss": [4.2, 2.4, 1.5, 1.3], "mae": [2, 1.4, 1, .8]}
    fig = plots.loss_curves(history, path=tmp_path / "loss.png", loss_label="loss (MSE, units²)")
    assert labels(fig) == [("epoch", "loss (MSE, units²)"), ("epoch", "metric value")]
    lines = fig.axes[0].get_lines()
    assert [ln.get_label() for ln in lines] == ["loss", "val_loss"]
    np.testing.assert_array_equal(lines[0].get_xdata(), [1, 2, 3, 4])
    np.testing.assert_array_equal(lines[1].get_ydata(), history["val_loss"])
    check_png(tmp_path / "loss.png")
    fig = plots.loss_curves({"loss": [3.0, 2.0]}, initial_epoch=2)
    np.testing.assert_array_equal(fig.axes[0].get_lines()[0].get_xdata(), [3, 4])
    with pytest.raises(ValueError, match="no loss entries"):
        plots.loss_curves({"acc": [1.0]})


def test_fit_residuals(tmp_path):
    x = np.linspace(0, 10, 40)
    y = 2 * x + 1 + np.sin(x)
    grid = np.linspace(0, 10, 200)
    fig = plots.fit_residuals(x, y, {"linear": 2 * x + 1, "smooth": (2 * x + 1 + np.sin(x),
                                                                      2 * grid + 1 + np.sin(grid))},
                              x_grid=grid, x_label="time (s)", y_label="distance (m)",
                              path=tmp_path / "fit.png")
    assert labels(fig) == [("time (s)", "distance (m)"), ("time (s)", "residual (distance (m))")]
    residuals = fig.axes[1].collections[0].get_offsets()[:, 1]
    np.testing.assert_allclose(residuals, np.sin(x))
    check_png(tmp_path / "fit.png")
    with pytest.raises(ValueError, match="3 predictions for 40 points"):
        plots.fit_residuals(x, y, {"bad": [1, 2, 3]})


def test_loss_surface_with_gradient_field_and_paths(tmp_path):
    m = np.linspace(-1, 3, 41)
    b = np.linspace(-2, 2, 31)
    mm, bb = np.meshgrid(m, b)
    loss = (mm - 1) ** 2 + 3 * bb ** 2
    paths = {"GD": np.array([[0.0, 1.5], [0.5, 0.8], [0.9, 0.2], [1.0, 0.0]]),
             "SGD": np.array([[-0.5, -1.5], [0.3, -0.4], [1.1, 0.1]])}
    fig = plots.loss_surface(m, b, loss, paths=paths, optimum=(1.0, 0.0), path=tmp_path / "s.png")
    ax = fig.axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("slope m", "intercept b")
    assert fig.axes[1].get_ylabel() == "R(m, b)"  # the colour bar says what colours mean
    quiver = [c for c in ax.collections if type(c).__name__ == "Quiver"]
    assert len(quiver) == 1
    # arrows point downhill: at m > 1 the m-component of -grad R is negative
    q = quiver[0]
    right = q.X > 1.5
    assert np.all(q.U[right] < 0)
    names = [ln.get_label() for ln in ax.get_lines()]
    assert "GD" in names and "SGD" in names and "exact optimum" in names
    gd = ax.get_lines()[names.index("GD")]
    np.testing.assert_array_equal(gd.get_xydata(), paths["GD"])
    check_png(tmp_path / "s.png")
    with pytest.raises(ValueError, match=r"shape \(len\(b\), len\(m\)\)"):
        plots.loss_surface(m, b, loss.T)
    with pytest.raises(ValueError, match="shape \\(steps, 2\\)"):
        plots.loss_surface(m, b, loss, paths={"bad": np.zeros(3)})


def test_capacity_curve(tmp_path):
    degrees = np.arange(1, 8)
    train = 1.0 / degrees
    val = np.array([1.0, 0.5, 0.3, 0.35, 0.5, 0.8, 1.2])
    fig = plots.capacity_curve(degrees, train, val, path=tmp_path / "cap.png")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "polynomial degree (model capacity)"
    assert ax.get_ylabel() == "R (mean squared error)"
    assert any("degree 3" in ln.get_label() for ln in ax.get_lines())
    check_png(tmp_path / "cap.png")
    with pytest.raises(ValueError, match="equal lengths"):
        plots.capacity_curve(degrees, train[:-1], val)


def test_forecast(tmp_path):
    t = np.arange(1700, 1800)
    truth = 50 + 40 * np.sin(t / 11 * 2 * np.pi)
    fig = plots.forecast(t, truth, {"AR(9)": (t[80:], truth[80:] + 3), "persistence": np.roll(truth, 1)},
                         t_label="year", y_label="sunspot number", t_split=1780,
                         path=tmp_path / "fc.png")
    # The whole series above, the test period below (where the forecasts are drawn).
    assert labels(fig) == [("year", "sunspot number")] * 2
    whole, test = fig.axes
    assert [ln.get_label() for ln in whole.get_lines()] == ["truth"]
    assert [ln.get_label() for ln in test.get_lines()][:3] == ["truth", "AR(9)", "persistence"]
    assert all(ln.get_xdata().min() >= 1780 for ln in test.get_lines())
    check_png(tmp_path / "fc.png", min_w=1000)
    single = plots.forecast(t, truth, {"persistence": np.roll(truth, 1)}, t_label="year",
                            y_label="sunspot number")
    assert len(single.axes) == 1


def test_accuracy_curves(tmp_path):
    curves = {"none": {"batch 32": ([0.5, 1.0, 1.5], [0.6, 0.85, 0.93]),
                       "batch 512": ([0.1, 0.2, 0.3], [0.2, 0.4, 0.55])},
              "linear": {"batch 32": ([0.5, 1.0, 1.5], [0.6, 0.85, 0.93])}}
    fig = plots.accuracy_curves(curves, target=0.9, path=tmp_path / "acc.png")
    # per rule: accuracy by epoch above, by training time below
    assert labels(fig) == [("epoch", "test accuracy")] * 2 + [("training time (s)", "test accuracy")] * 2
    top = fig.axes[0]
    assert top.get_title() == "none"
    lines = {ln.get_label(): ln for ln in top.get_lines()}
    np.testing.assert_array_equal(lines["batch 512"].get_xdata(), [1, 2, 3])
    np.testing.assert_array_equal(lines["batch 512"].get_ydata(), [0.2, 0.4, 0.55])
    assert "target 0.9" in lines
    # one colour per label across panels
    assert lines["batch 32"].get_color() == fig.axes[1].get_lines()[0].get_color()
    check_png(tmp_path / "acc.png")
    with pytest.raises(ValueError, match="2 times for 3 accuracies"):
        plots.accuracy_curves({"none": {"batch 32": ([1, 2], [0.1, 0.2, 0.3])}})
    with pytest.raises(ValueError, match="at least one run"):
        plots.accuracy_curves({"none": {}})


def test_batch_size_effect(tmp_path):
    batches = [32, 128, 512, 1438]
    fig = plots.batch_size_effect(batches, {
        "final test accuracy": {"none": [0.97, 0.96, 0.9, 0.74], "linear": [0.97, 0.97, 0.96, 0.08]},
        "seconds to target": {"none": [0.5, 1.5, None, None], "linear": [0.5, 0.7, 0.8, None]},
        "never": {"none": [None] * 4},
    }, path=tmp_path / "bs.png")
    assert labels(fig) == [("global batch size", "final test accuracy"),
                           ("global batch size", "seconds to target"),
                           ("global batch size", "never")]
    acc, secs, never = fig.axes
    assert acc.get_xscale() == "log"
    assert [t.get_text() for t in acc.get_xticklabels()] == ["32", "128", "512", "1438"]
    np.testing.assert_array_equal(secs.get_lines()[0].get_ydata(), [0.5, 1.5, np.nan, np.nan])
    assert any("no value" in t.get_text() for t in never.texts)
    check_png(tmp_path / "bs.png")
    with pytest.raises(ValueError, match="3 values for 4 batch sizes"):
        plots.batch_size_effect(batches, {"acc": {"none": [1, 2, 3]}})
    with pytest.raises(ValueError, match="positive sizes"):
        plots.batch_size_effect([0, 32], {"acc": {"none": [1, 2]}})


def test_activations(tmp_path):
    fig = plots.activations(path=tmp_path / "act.png")
    assert len(labels(fig)) == 4 and all(l == ("input x", "activation f(x)") for l in labels(fig))
    lines = {ax.get_title(): ax.get_lines()[0] for ax in fig.axes}
    relu = [v for k, v in lines.items() if k.startswith("ReLU")][0]
    assert relu.get_ydata().min() == 0.0 and relu.get_ydata().max() == 5.0
    soft = [v for k, v in lines.items() if k.startswith("softmax")][0].get_ydata()
    assert np.all((soft > 0) & (soft < 1)) and np.all(np.diff(soft) > 0)
    check_png(tmp_path / "act.png")
    fig = plots.activations(functions={"tanh": np.tanh})
    assert len(labels(fig)) == 1


def test_save_refuses_unlabelled_axes_and_writes_atomically(tmp_path):
    fig, ax = plots.new_figure()
    ax.plot([0, 1], [0, 1])
    ax.set_xlabel("x")
    with pytest.raises(ValueError, match="has no y label"):
        plots.save(fig, tmp_path / "bad.png")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match=r"\.png"):
        plots.save(fig, tmp_path / "bad.jpg")
    ax.set_ylabel("y")
    target = tmp_path / "good.png"
    target.write_bytes(b"old")
    plots.save(fig, target)
    assert target.read_bytes()[:4] == b"\x89PNG"
    assert [p.name for p in tmp_path.iterdir()] == ["good.png"]


def test_prediction_intervals(tmp_path):
    import pandas as pd

    grid = np.linspace(0, 1, 20)
    frame = pd.DataFrame({"mean": grid, "mean_ci_lower": grid - 0.1, "mean_ci_upper": grid + 0.1,
                          "obs_ci_lower": grid - 0.3, "obs_ci_upper": grid + 0.3})
    panel = {"title": "line", "x": [0.2, 0.5], "y": [0.1, 0.6], "x_grid": grid, "frame": frame,
             "x_label": "dose", "y_label": "response"}
    fig = plots.prediction_intervals([panel, dict(panel, title="again")], path=tmp_path / "pi.png")
    assert labels(fig)[:2] == [("dose", "response"), ("dose", "response")]
    bands = fig.axes[0].collections[:2]   # prediction band, then confidence band
    np.testing.assert_allclose(bands[0].get_paths()[0].vertices[:, 1].max(), 1.3)
    np.testing.assert_allclose(bands[1].get_paths()[0].vertices[:, 1].max(), 1.1)
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()][:2] == [
        "95% prediction interval", "95% confidence interval"]
    check_png(tmp_path / "pi.png")
    with pytest.raises(ValueError, match=r"frame lacks columns \['obs_ci_lower', 'obs_ci_upper'\]"):
        plots.prediction_intervals([dict(panel, frame=frame[["mean", "mean_ci_lower", "mean_ci_upper"]])])
    with pytest.raises(ValueError, match="panel 0 lacks \\['frame'\\]"):
        plots.prediction_intervals([{k: v for k, v in panel.items() if k != "frame"}])
