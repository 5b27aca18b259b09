"""The benchmarks' own figures: they read the JSON documents the benchmarks write.

Drawn with bwkeras.plots' figure and save (labelled axes, atomic PNG), kept here because
only the benchmarks know their result format.
"""
import numpy as np

from bwkeras import plots


def scaling_bars(result, path=None, goal=1.7):
    """Speedup over plain Keras in one process, per configuration, one panel per model.

    `result` is the document of `python -m benchmarks scaling`: result["models"][model][name]
    holds "np", "speedup" and the runs' "min"/"max"; bars show the median, whiskers the spread.
    """
    models = result["models"]
    if not models:
        raise ValueError("result['models'] is empty: nothing to plot")
    fig, axes = plots.new_figure(1, len(models), size=(7.0 * len(models), 6.0))
    axes = np.atleast_1d(axes)
    for ax, (model, rows) in zip(axes, models.items()):
        names = list(rows)
        base = rows[result.get("baseline", "plain-np1")]["samples_per_s_median"]
        med = np.array([rows[n]["speedup"] for n in names])
        low = med - np.array([rows[n]["min"] for n in names]) / base
        high = np.array([rows[n]["max"] for n in names]) / base - med
        colors = ["tab:green" if n.startswith("bwkeras") else "0.6" if n.startswith(("plain", "independent"))
                  else "tab:orange" for n in names]
        ax.barh(names, med, xerr=[low, high], color=colors, capsize=3)
        for i, value in enumerate(med):  # right of the whisker, so the two never overlap
            ax.text(value + high[i] + 0.03, i, f"{value:.2f}x", va="center")
        ax.axvline(2.0, color="k", ls=":", label="ideal at np=2")
        ax.axvline(goal, color="tab:red", ls="--", label=f"goal {goal}x")
        ax.invert_yaxis()
        ax.set_xlim(0, max(2.4, float((med + high).max()) + 0.35))
        ax.set_xlabel("throughput / plain Keras np=1 (median, whiskers: min-max)")
        ax.set_ylabel("configuration")
        ax.set_title(f"{model}: data-parallel speedup")
        ax.legend(loc="lower right")
    if path is not None:
        plots.save(fig, path)
    return fig


def allreduce_curves(result, path=None):
    """Allreduce time and bus bandwidth against message size, beside the ring model.

    `result` is the document of `python -m benchmarks allreduce`: result["transports"][name]
    lists {"bytes", "seconds_median"}; result["model"][name] the ring model's seconds at the
    same sizes; result["memcpy_bytes_per_s"] the copy bandwidth of one core.
    """
    fig, (ax_t, ax_b) = plots.new_figure(1, 2, size=(13.0, 5.5))
    for name, rows in result["transports"].items():
        size = np.array([r["bytes"] for r in rows], dtype=float)
        secs = np.array([r["seconds_median"] for r in rows], dtype=float)
        line, = ax_t.loglog(size, secs * 1e3, marker="o", label=f"{name} measured")
        if name in result.get("model", {}):
            ax_t.loglog(size, np.array(result["model"][name]) * 1e3, ls="--", color=line.get_color(),
                        label=f"{name} ring model a + 2(N-1)/N S/B")
        ax_b.semilogx(size, 2 * (result["ranks"] - 1) / result["ranks"] * size / secs / 1e9,
                      marker="o", color=line.get_color(), label=name)
    memcpy = result["memcpy_bytes_per_s"] / 1e9
    ax_b.axhline(memcpy, color="k", ls=":", label=f"memcpy, one core ({memcpy:.1f} GB/s)")
    ax_t.set_xlabel("message size S (bytes)")
    ax_t.set_ylabel("allreduce time (ms)")
    ax_t.set_title(f"Allreduce between {result['ranks']} ranks on one host")
    ax_b.set_xlabel("message size S (bytes)")
    ax_b.set_ylabel("bus bandwidth 2(N-1)/N S / t (GB/s)")
    ax_b.set_title("Achieved bandwidth against the copy limit")
    for ax in (ax_t, ax_b):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    if path is not None:
        plots.save(fig, path)
    return fig


def multinode_bars(result, path=None):
    """Two nodes over a shaped link: each job's throughput as a fraction of the same-run
    ceiling (two independent processes, one per node), beside the ring model's prediction.

    `result` is the document of `python -m benchmarks multinode`:
    result["profiles"][profile]["models"][model][name] holds "of_ceiling", "min", "max",
    "step_ms_median" and, for communicating jobs, "predicted_step_ms".
    """
    profiles = result["profiles"]
    models = sorted({m for p in profiles.values() for m in p["models"]})
    if not models:
        raise ValueError("result['profiles'] holds no model: nothing to plot")
    fig, axes = plots.new_figure(1, len(models), size=(7.5 * len(models), 6.5))
    axes = np.atleast_1d(axes)
    for ax, model in zip(axes, models):
        labels, measured, predicted, spread = [], [], [], []
        for profile, entry in profiles.items():
            rows = entry["models"].get(model, {})
            if "independent-np2" not in rows:
                continue
            ceiling = rows["independent-np2"]["samples_per_s_median"]
            for name, row in rows.items():
                if name == "independent-np2":
                    continue
                labels.append(f"{profile}: {name}")
                measured.append(row["of_ceiling"])
                spread.append((row["of_ceiling"] - row["min"] / ceiling, row["max"] / ceiling - row["of_ceiling"]))
                # the model's throughput share: compute time over predicted step time
                predicted.append(rows["independent-np2"]["step_ms_median"] / row["predicted_step_ms"])
        y = np.arange(len(labels))
        err = np.array(spread).T if spread else None
        ax.barh(y, measured, xerr=err, color="tab:green", capsize=3, label="measured (median, min-max)")
        ax.scatter(predicted, y, color="k", marker="|", s=300, zorder=3,
                   label="ring model t_compute / (t_compute + a + S/B)")
        ax.set_yticks(y, labels)
        ax.invert_yaxis()
        ax.axvline(1.0, color="k", ls=":", label="ceiling: 2 independent processes")
        # a noisy ceiling round can put a job above 1: keep every bar and whisker in view
        tops = [m + s[1] for m, s in zip(measured, spread)] + predicted
        ax.set_xlim(0, max([1.3] + [t + 0.05 for t in tops]))
        ax.set_xlabel("throughput / same-run ceiling")
        ax.set_ylabel("link profile: job")
        ax.set_title(f"{model}: 2 nodes x 1 rank over a shaped link")
        # below the axes: inside, it hides the last bars
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), fontsize="small", ncol=1)
    if path is not None:
        plots.save(fig, path)
    return fig


def soak_times(result, path=None):
    """Seconds from each fault to the end of every rank, one row per launcher and fault.

    `result` is the document of `python -m benchmarks soak`: result["trials"] holds each
    trial's "launcher", "fault", "fault_to_exit_s", "hang", "checkpoint_intact" and
    "resumed_equal". Dots are trials (red: a hang, or a checkpoint or resume that failed);
    the dotted line is the stall limit the frozen-rank trials wait out.
    """
    trials = [t for t in result["trials"] if "error" not in t]
    if not trials:
        raise ValueError("result['trials'] holds no completed trial: nothing to plot")
    rows = sorted({(t["launcher"], t["fault"]) for t in trials})
    fig, ax = plots.new_figure(size=(8.0, 0.4 * len(rows) + 2.0))
    for y, (launcher, fault) in enumerate(rows):
        for t in trials:
            if (t["launcher"], t["fault"]) != (launcher, fault):
                continue
            good = not t["hang"] and t["checkpoint_intact"] and t["resumed_equal"]
            seconds = t["fault_to_exit_s"] if t["fault_to_exit_s"] is not None else result["hang_timeout_s"]
            ax.scatter(seconds, y, color="tab:green" if good else "tab:red", s=30, zorder=3)
    ax.set_yticks(np.arange(len(rows)), [f"{launcher}: {fault}" for launcher, fault in rows])
    ax.invert_yaxis()
    ax.axvline(result["stall_seconds"], color="k", ls=":", label=f"stall limit {result['stall_seconds']} s")
    ax.set_xlabel("seconds from the fault until every rank has exited")
    ax.set_ylabel("launcher: fault")
    ax.set_title(f"Soak: {len(trials)} faulted 2-rank runs\n(green: ended, last checkpoint intact, "
                 "resumed to the uninterrupted weights)", fontsize="small")
    ax.legend(loc="lower right", fontsize="small")
    if path is not None:
        plots.save(fig, path)
    return fig


def overlap_bars(result, path=None):
    """Throughput over the same-run ceiling (two independent processes) per np=2
    configuration, one panel per model, each bar labelled with the share of its gradient
    exchange that ran during backprop (from the Horovod timeline).

    `result` is the document of `python -m benchmarks overlap`:
    result["models"][model]["configs"][name] holds "vs_ceiling", its min/max and "overlap".
    """
    models = result["models"]
    if not models:
        raise ValueError("result['models'] is empty: nothing to plot")
    fig, axes = plots.new_figure(1, len(models), size=(8.5 * len(models), 6.0))
    axes = np.atleast_1d(axes)
    for ax, (model, doc) in zip(axes, models.items()):
        rows = {n: r for n, r in doc["configs"].items() if n != "independent-np2"}
        names = list(rows)
        med = np.array([rows[n]["vs_ceiling"] for n in names])
        low = med - np.array([rows[n]["vs_ceiling_min"] for n in names])
        high = np.array([rows[n]["vs_ceiling_max"] for n in names]) - med
        colors = ["tab:green" if n.startswith("bwkeras") else "0.6" if n.startswith("plain")
                  else "tab:orange" for n in names]
        ax.barh(names, med, xerr=[low, high], color=colors, capsize=3)
        for i, name in enumerate(names):
            share = rows[name].get("overlap")
            label = f"{med[i]:.2f}" + (f"  overlap {share['overlap']:.0%}" if share else "")
            ax.text(med[i] + high[i] + 0.02, i, label, va="center")
        ax.axvline(1.0, color="k", ls=":", label="ceiling: 2 independent processes")
        ax.axvline(0.95, color="tab:red", ls="--", label="goal MPI 0.95")
        ax.axvline(0.90, color="tab:purple", ls="--", label="goal Gloo 0.90")
        ax.invert_yaxis()
        ax.set_xlim(0, max(1.5, float((med + high).max()) + 0.45))
        ax.set_xlabel("throughput / same-run ceiling (median, whiskers: min-max)")
        ax.set_ylabel("configuration")
        ax.set_title(f"{model}: np=2, buckets vs one grouped allreduce")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), fontsize=8, ncol=3)  # below: no bar hidden
    if path is not None:
        plots.save(fig, path)
    return fig
