"""The benchmarks' arithmetic and figures (the measurements themselves run with `make bench`)."""
import json

import numpy as np
import pytest

from benchmarks import allreduce_bench, scaling_bench
from benchmarks.allreduce_bench import MLP_GRADIENT_BYTES
from benchmarks import plots as bench_plots
from bwkeras import plots
from test_plots import check_png

# Stack-independent: the benchmarks' bookkeeping (ring model, summaries, figures); the
# workers run on both stacks in the benchmarks themselves.
pytestmark = pytest.mark.one_stack


def test_ring_model_fit_recovers_latency_and_bandwidth():
    latency, bandwidth, ranks = 80e-6, 3.0e9, 2
    rows = [{"bytes": s, "seconds_median": latency + 2 * (ranks - 1) / ranks * s / bandwidth}
            for s in (4096, 65536, 2 ** 20, 2 ** 24)]
    a, b = allreduce_bench.fit_ring_model(rows, ranks)
    # Exact data: only the polyfit's rounding separates the fit from the truth.
    assert a == pytest.approx(latency, rel=1e-6)
    assert b == pytest.approx(bandwidth, rel=1e-6)


def test_mlp_gradient_size_is_the_scaling_mlp():
    keras = pytest.importorskip("keras")
    model = keras.Sequential([keras.Input(shape=(784,)), keras.layers.Dense(512),
                              keras.layers.Dense(512), keras.layers.Dense(10)])
    assert allreduce_bench.MLP_GRADIENT_BYTES == 4 * model.count_params()


def test_summarise_speedup_and_efficiency():
    rows = scaling_bench.summarise({"plain-np1": [10.0, 12.0, 11.0], "bwkeras-np2": [19.0, 20.0, 21.0]})
    assert rows["plain-np1"]["speedup"] == 1.0
    assert rows["bwkeras-np2"]["np"] == 2
    assert rows["bwkeras-np2"]["speedup"] == pytest.approx(20.0 / 11.0)
    assert rows["bwkeras-np2"]["efficiency"] == pytest.approx(10.0 / 11.0)
    assert (rows["bwkeras-np2"]["min"], rows["bwkeras-np2"]["max"]) == (19.0, 21.0)
    assert "speedup_vs_own_np1" not in rows["bwkeras-np2"]  # no bwkeras-np1 measured
    rows = scaling_bench.summarise({"plain-np1": [10.0], "stock-horovod-np1": [8.0],
                                    "stock-horovod-np2-gloo": [12.0]})
    assert rows["stock-horovod-np2-gloo"]["speedup_vs_own_np1"] == pytest.approx(1.5)


def test_scaling_and_allreduce_figures(tmp_path):
    scaling = {"baseline": "plain-np1", "models": {m: scaling_bench.summarise({
        "plain-np1": [10.0, 11.0], "independent-np2": [19.0, 20.0], "bwkeras-np2": [17.0, 18.0],
        "stock-horovod-np2": [12.0, 13.0]}) for m in ("mlp", "lstm")}}
    check_png(plots.save(bench_plots.scaling_bars(scaling), str(tmp_path / "scaling.png")))
    sizes = [4096, 2 ** 16, 2 ** 20, 2 ** 24]
    rows = [{"bytes": s, "seconds_median": 1e-4 + s / 1e9} for s in sizes]
    allreduce = {"ranks": 2, "memcpy_bytes_per_s": 8e9, "transports": {"gloo": rows},
                 "model": {"gloo": [r["seconds_median"] for r in rows]}}
    check_png(plots.save(bench_plots.allreduce_curves(allreduce), str(tmp_path / "allreduce.png")))
    with pytest.raises(ValueError, match="empty"):
        bench_plots.scaling_bars({"models": {}})


def test_nist_benchmark_quick_run_reports_every_solver():
    pytest.importorskip("scipy")
    from benchmarks import nist_bench

    assert nist_bench._lre([1.0, 2.0 + 2e-6], [1.0, 2.0]) == pytest.approx(6.0)
    assert nist_bench._lre([np.nan], [1.0]) == -99.0
    result = nist_bench.run(quick=True)
    assert result["pairs"] == 2 * len(nist_bench.QUICK)
    row = result["rows"][0]
    assert set(nist_bench.SOLVERS) <= set(row)
    for solver in nist_bench.SOLVERS:
        assert {"lre_params", "lre_std_errors", "iterations", "seconds", "meets_bar"} <= set(row[solver])
    # BoxBOD from start 1: bwkeras reaches the certified values, MINPACK with defaults does not.
    boxbod = next(r for r in result["rows"] if r["problem"] == "BoxBOD" and r["start"] == 1)
    assert boxbod["bwkeras"]["meets_bar"] and not boxbod["scipy-lm"]["meets_bar"]


def test_multinode_ring_model_step_matches_the_issues_figure():
    from benchmarks.multinode_bench import LSTM_GRADIENT_BYTES, predicted_step_ms

    # 2.68 MB of MLP gradients at 1 Gbit/s (125e6 B/s) between 2 ranks: 2(N-1)/N = 1, so
    # about 21 ms of exchange on top of 36 ms of compute.
    fit = {"latency_s": 1e-4, "bandwidth_bytes_per_s": 125e6}
    mlp = MLP_GRADIENT_BYTES
    assert predicted_step_ms(36.0, fit, mlp, "bwkeras-mpi") == pytest.approx(36.0 + 0.1 + mlp / 125e3)
    assert 21.0 < predicted_step_ms(0.0, fit, mlp, "bwkeras-mpi") < 21.6
    # fp16 halves the bytes; accumulation over 2 batches halves the exchanges per step.
    assert predicted_step_ms(0.0, fit, mlp, "bwkeras-mpi-fp16") == pytest.approx(0.1 + mlp / 250e3)
    assert predicted_step_ms(0.0, fit, mlp, "bwkeras-mpi-accum2") == pytest.approx(0.05 + mlp / 250e3)
    # The LSTM(64) forecaster: 4 gates x 64 units x (1 input + 64 recurrent + 1 bias), + Dense(1).
    assert LSTM_GRADIENT_BYTES == 4 * (4 * 64 * 66 + 65)


def test_the_bytes_that_cannot_hide_behind_backprop():
    from benchmarks.multinode_bench import GRADIENT_BYTES, TENSOR_BYTES, exposed_bytes

    assert {m: sum(v) for m, v in TENSOR_BYTES.items()} == GRADIENT_BYTES
    assert exposed_bytes("mlp", "bwkeras-mpi-grouped") == MLP_GRADIENT_BYTES
    assert exposed_bytes("mlp", "bwkeras-mpi") == 4 * (784 * 512 + 512)      # the last bucket
    assert exposed_bytes("mlp", "stock-horovod-mpi") == 4 * 784 * 512        # the last tensor
    assert exposed_bytes("lstm", "bwkeras-mpi") == GRADIENT_BYTES["lstm"]    # one bucket: all


def test_multinode_summary_and_figure(tmp_path):
    from benchmarks.multinode_bench import markdown, summarise
    from benchmarks.plots import multinode_bars

    fits = {t: {"latency_s": 1e-4, "bandwidth_bytes_per_s": 125e6} for t in ("mpi", "gloo")}
    samples = {"independent-np2": [1000.0, 1100.0, 900.0], "bwkeras-mpi": [600.0, 500.0, 700.0]}
    steps = {"independent-np2": [36.0, 35.0, 37.0], "bwkeras-mpi": [60.0, 58.0, 62.0]}
    rows = summarise(samples, steps, fits, "mlp")
    assert rows["bwkeras-mpi"]["of_ceiling"] == pytest.approx(0.6)
    # buckets: only the last one (the input layer's 784x512 kernel and bias) is exposed
    assert rows["bwkeras-mpi"]["predicted_step_ms"] == pytest.approx(36.0 + 0.1 + 4 * (784 * 512 + 512) / 125e3)
    assert rows["bwkeras-mpi"]["predicted_no_overlap_ms"] == pytest.approx(36.0 + 0.1 + MLP_GRADIENT_BYTES / 125e3)
    assert rows["bwkeras-mpi"]["measured_over_predicted"] == pytest.approx(60.0 / rows["bwkeras-mpi"]["predicted_step_ms"])
    result = {"profiles": {"1gbit": {"models": {"mlp": rows}, "allreduce": fits}}}
    multinode_bars(result, tmp_path / "m.png")
    assert (tmp_path / "m.png").stat().st_size > 10_000
    text = markdown(result)
    # 125e6 B/s is 1 Gbit/s; the ceiling row has no model column, the job row its ratio.
    assert "| 1gbit | mpi | 100 | 1 |" in text
    assert "| 1gbit | mlp | bwkeras-mpi | 600 | 500-700 | 0.6 | 60 |" in text


def test_soak_schedule_repeats_from_its_seed_and_covers_every_fault():
    import random

    from benchmarks import soak_bench as soak

    names = ["horovodrun-gloo", "mpirun", "srun"]
    plan = soak.schedule(names, 12, random.Random(3))
    assert plan == soak.schedule(names, 12, random.Random(3))
    assert plan != soak.schedule(names, 12, random.Random(4))
    for name in names:  # 4 trials each: one of every fault
        assert sorted(f for n, f, _, _ in plan if n == name) == sorted(soak.FAULTS)
    for _, _, rank, step in plan:
        assert rank in (0, 1) and soak.STEPS < step < soak.EPOCHS * soak.STEPS - 1


def test_soak_summary_and_figure(tmp_path):
    from benchmarks import soak_bench as soak
    from benchmarks.plots import soak_times

    def trial(launcher, fault, seconds, hang=False, intact=True, equal=True):
        return {"launcher": launcher, "fault": fault, "fault_to_exit_s": seconds, "hang": hang,
                "ranks_left_behind": [], "checkpoint_intact": intact, "resumed_equal": equal,
                "resume_max_abs_diff": 0.0 if equal else 0.5}

    trials = [trial("mpirun", "kill", 1.0), trial("mpirun", "stop", 12.0),
              trial("srun", "kill", 3.0, intact=False, equal=False),
              trial("srun", "stop", None, hang=True), {"launcher": "srun", "fault": "kill", "error": "x"}]
    summary = soak.summarise(trials)
    assert summary["all"] == {"trials": 5, "faulted": 4, "hangs": 1, "ranks_left_behind": 0,
                              "fault_to_exit_s_median": 3.0, "fault_to_exit_s_worst": 12.0,
                              "checkpoint_intact": 3, "resumed_equal": 3, "resume_max_abs_diff": 0.5,
                              "errors": 1}
    assert summary["launcher=mpirun"]["hangs"] == 0 and summary["fault=stop"]["hangs"] == 1
    soak_times({"trials": trials, "stall_seconds": 10, "hang_timeout_s": 120}, tmp_path / "soak.png")
    assert (tmp_path / "soak.png").stat().st_size > 1000


def test_benchmark_options_are_refused_where_a_benchmark_takes_none(capsys):
    from benchmarks.__main__ import main

    with pytest.raises(SystemExit) as exit_:
        main(["watchdog", "--seed", "1"])
    assert exit_.value.code == 2
    assert "benchmark watchdog takes no --seed" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["watchdog", "--models", "mlp"])
    assert exit_.value.code == 2
    assert "benchmark watchdog takes no --models" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["overlap", "--models", ","])
    assert exit_.value.code == 2
    assert "expected a comma-separated list of names, got ','" in capsys.readouterr().err


def test_a_model_or_profile_the_benchmark_does_not_have_is_named():
    from benchmarks import multinode_bench, overlap_bench

    with pytest.raises(SystemExit, match=r"unknown models \['cnn'\]; expected some of \['mlp', 'lstm'\]"):
        overlap_bench.run(models=["cnn"])
    with pytest.raises(SystemExit, match=r"unknown profiles \['2gbit'\]"):
        multinode_bench._chosen("profiles", ["2gbit"], multinode_bench.PROFILES)


def _trace(steps):
    """A Horovod-style timeline: two gradient tensors (pid 1, 2) and a metric (pid 3);
    `steps` lists, per step, each gradient's (negotiate begin, negotiate end, reduce
    begin, reduce end) in microseconds."""
    events = [{"name": "process_name", "ph": "M", "pid": 1, "args": {"name": "Grouped_gradient_tape_a_1of1"}},
              {"name": "process_name", "ph": "M", "pid": 2, "args": {"name": "Grouped_gradient_tape_b_1of1"}},
              {"name": "process_name", "ph": "M", "pid": 3, "args": {"name": "HorovodAllreduce"}}]
    for step in steps:
        for pid, (nb, ne, rb, re_) in zip((1, 2), step):
            events += [{"ph": "B", "name": "NEGOTIATE_ALLREDUCE", "ts": nb, "pid": pid},
                       {"ph": "E", "ts": ne, "pid": pid},
                       {"ph": "B", "name": "ALLREDUCE", "ts": rb, "pid": pid},
                       {"ph": "B", "name": "GLOO_ALLREDUCE", "ts": rb + 1, "pid": pid},
                       {"ph": "E", "ts": re_ - 1, "pid": pid},
                       {"ph": "E", "ts": re_, "pid": pid}]
        events += [{"ph": "B", "name": "ALLREDUCE", "ts": 0, "pid": 3}, {"ph": "E", "ts": 10**6, "pid": 3}]
    return events


def test_timeline_overlap_is_the_share_of_the_exchange_before_the_last_gradient(tmp_path):
    from benchmarks import timeline

    # Step A: tensor 1 is reduced over [10, 50] while tensor 2's gradient only exists at 40
    # (its negotiation ends then), and tensor 2 over [40, 60]: the exchange is the union
    # [10, 60] = 50 us, of which [10, 40] = 30 us ran before backprop ended: 0.6.
    a = [(0, 10, 10, 50), (5, 40, 40, 60)]
    # Step B: one grouped exchange after backprop, both over [40, 60]: 0.
    b = [(0, 40, 40, 60), (5, 40, 40, 60)]
    path = tmp_path / "t.json"
    text = json.dumps(_trace([b, a, b, a]))
    path.write_text(text[:-1] + ",")            # Horovod leaves the bracket open until it ends
    result = timeline.overlap(timeline.load(path), skip=1)
    assert result["steps"] == 3 and result["tensors"] == 2      # the metric is not a gradient
    assert (result["overlap_min"], result["overlap_max"]) == pytest.approx((0.0, 0.6))
    assert result["overlap"] == pytest.approx(0.6)              # median of 0.6, 0, 0.6
    assert result["exchange_ms"] == pytest.approx(0.05)
    with pytest.raises(ValueError, match="no step of gradient exchanges after the first 4"):
        timeline.overlap(timeline.load(path), skip=4)


def test_overlap_summary_goals_and_figure(tmp_path):
    from benchmarks import overlap_bench

    rows = overlap_bench.summarise({"plain-np1": [10.0], "independent-np2": [16.0, 15.0, 17.0],
                                    "bwkeras-np2": [15.5, 15.0, 16.0], "bwkeras-np2-gloo": [13.0, 12.0, 14.0],
                                    "stock-horovod-np2-gloo": [14.0, 13.0, 15.0]})
    assert rows["bwkeras-np2"]["vs_ceiling"] == pytest.approx(15.5 / 16.0)
    assert rows["bwkeras-np2-gloo"]["vs_ceiling_min"] == pytest.approx(12.0 / 16.0)
    goals = overlap_bench.goals(rows)
    assert goals["bwkeras-np2 >= 0.95 of ceiling"]["met"]
    assert not goals["bwkeras-np2-gloo >= 0.9 of ceiling"]["met"]
    assert goals["bwkeras-np2-gloo >= stock-horovod-np2-gloo"]["value"] == pytest.approx(13.0 / 14.0)
    rows["bwkeras-np2"]["overlap"] = {"overlap": 0.4, "overlap_min": 0.3, "overlap_max": 0.5, "exchange_ms": 2.5}
    bench_plots.overlap_bars({"models": {"mlp": {"configs": rows}}}, tmp_path / "o.png")
    check_png(tmp_path / "o.png")
    table = overlap_bench.markdown({"models": {"mlp": {"configs": rows, "goals": goals}}})
    assert "| mlp | bwkeras-np2 | 16 | 15-16 | 0.969 | 0.40 (0.30-0.50) | 2.5 |" in table
    assert "| mlp | bwkeras-np2-gloo >= 0.9 of ceiling | 0.812 | no |" in table


def test_synthetic_images_per_process_and_against_the_ceiling():
    from benchmarks import synthetic_bench

    rows = synthetic_bench.summarise({"plain-np1": [100.0], "independent-np2": [150.0, 140.0, 160.0],
                                      "bwkeras-np2": [120.0, 130.0, 110.0]})
    assert rows["bwkeras-np2"]["img_per_s_per_process"] == pytest.approx(60.0)
    assert rows["bwkeras-np2"]["vs_ceiling"] == pytest.approx(120.0 / 150.0)
    assert rows["bwkeras-np2"]["speedup"] == pytest.approx(1.2)
    table = synthetic_bench.markdown({"configs": rows})
    assert "| bwkeras-np2 | 120 | 110-130 | 60 | 1.2 | 0.8 |" in table


def test_rounds_alternate_their_order_so_a_slow_spell_is_shared(monkeypatch):
    from benchmarks import scaling_bench as sb

    ran = []
    monkeypatch.setattr(sb, "run_once", lambda jobs, steps, batch: (ran.append(jobs) or float(len(ran)), None))
    samples = sb.interleaved({"a": lambda: "A", "b": lambda: "B", "c": lambda: "C"}, 3, 5, 8, "mlp")
    assert ran == ["A", "B", "C", "C", "B", "A", "A", "B", "C"]
    assert samples == {"a": [1.0, 6.0, 7.0], "b": [2.0, 5.0, 8.0], "c": [3.0, 4.0, 9.0]}


def test_model_parallel_table_and_a_profile_it_does_not_know():
    from benchmarks import model_parallel_bench

    row = {"samples_per_s": 6500.4, "min": 6000.0, "max": 7000.0, "peak_mib_per_rank": 27.0,
           "params_per_rank": 402442, "bytes_sent_per_step_per_rank": 5120.0, "speedup": 0.5}
    table = model_parallel_bench.markdown({"configs": {"tensor-np2": row},
                                           "profiles": {"1gbit": {"configs": {"tensor-np2": row}}}})
    assert "| one host | tensor-np2 | 6500 | 6,000-7,000 | 0.5 | 27 | 402442 | 0.00512 |" in table
    assert "| 2 nodes, 1gbit | tensor-np2 | 6500 |" in table
    with pytest.raises(SystemExit, match=r"unknown profiles \['2gbit'\]"):
        model_parallel_bench.run(quick=True, profiles=["2gbit"])
