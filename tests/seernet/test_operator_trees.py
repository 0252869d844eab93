"""The per-operator cost model: labels split by roofline and re-split by the trees' own predictions,
extrapolation past the trained sizes, the whole-model composition, the fusion pairs learned from profiles,
saving and serving it, and the breakdown it gives."""
from __future__ import annotations

import numpy as np
import pytest

from seernet.data import Sample
from seernet.operator_trees import (COMPOSITION_TERMS, LABEL_SPLIT_ROUNDS, OPERATOR_FEATURES, OperatorModel,
                                    fit_operator_model, node_times, operator_table, roofline_ms, save_operator_model)
from seernet.predictor import OperatorPredictor, Predictor
from tests.operator_fixtures import EFFICIENCY, mlp_graph, profiled, profiled_mlps
from tests.server.fixtures import train_tiny_predictor


@pytest.fixture(scope="module")
def trained():
    samples = profiled_mlps()
    return samples, fit_operator_model(samples)


def test_a_fused_kernel_is_split_over_its_nodes_by_roofline_time():
    sample = profiled(mlp_graph([64, 32], 2), "one")
    times, roof = node_times(sample), roofline_ms(sample.graph)
    ops = sample.graph.op_types
    gemm = ops.index("Gemm")
    assert ops[gemm + 1] == "Relu"
    group = sample.operators.node_group
    assert group[gemm] == group[gemm + 1] >= 0
    kernel = sample.operators.group_ms[group[gemm]]
    assert times[gemm] + times[gemm + 1] == pytest.approx(kernel)
    assert times[gemm] / times[gemm + 1] == pytest.approx(roof[gemm] / roof[gemm + 1])
    assert operator_table(sample.graph).shape == (sample.graph.num_nodes, len(OPERATOR_FEATURES))


def test_it_learns_the_device_and_extrapolates_past_the_largest_trained_model(trained):
    samples, model = trained
    truth = np.array([s.targets["infer_time_ms"] for s in samples])
    assert np.median(np.abs(model.predict([s.graph for s in samples]) / truth - 1)) < 0.05
    big = profiled(mlp_graph([512, 256, 128], 32), "big")  # 64× the FLOPs of the largest trained model, 20× its time
    largest = max(truth)
    assert big.targets["infer_time_ms"] > 10 * largest
    # trees on log time would stop at the largest leaf (≈ the largest trained model); efficiencies do not
    assert model.predict([big.graph])[0] == pytest.approx(big.targets["infer_time_ms"], rel=0.2)


def test_the_composition_keeps_the_operators_and_learns_the_rest(trained):
    _, model = trained
    composition = model.params["composition"]
    assert len(composition) == len(COMPOSITION_TERMS)
    assert composition[0] == pytest.approx(1.1, rel=0.1)  # the synthetic device's 1.1 × Σ kernels
    assert all(c >= 0 for c in composition[:4])
    assert abs(composition[4]) < 0.02  # its time grows with the batch as its kernels' does


def test_the_composition_learns_a_time_that_grows_slower_with_the_batch_than_its_kernels():
    """A device whose whole-model time is its kernels' × b^-0.1 (what the kernels' sum cannot say): the
    batch term learns it, and predictions follow."""
    samples = profiled_mlps()
    for s in samples:
        s.targets["infer_time_ms"] *= s.graph.batch_size ** -0.1
    model = fit_operator_model(samples)
    assert model.params["composition"][4] < -0.05
    truth = np.array([s.targets["infer_time_ms"] for s in samples])
    assert np.median(np.abs(model.predict([s.graph for s in samples]) / truth - 1)) < 0.05
    flat = fit_operator_model(profiled_mlps())
    ratio = model.predict([samples[-1].graph])[0] / flat.predict([samples[-1].graph])[0]
    assert ratio == pytest.approx(8 ** -0.1, rel=0.05)  # the largest batch, 8


def test_a_model_saved_before_the_batch_term_composes_as_it_did(trained):
    samples, model = trained
    older = OperatorModel(model.arrays, {**model.params, "composition": [1.2, 0.01, 0.002, 0.03]}, model.metric)
    graph = samples[-1].graph
    total = float(older.node_ms(graph).sum())
    expected = 1.2 * total + 0.01 * graph.global_value("memory_sum") / 1e6 + 0.002 * graph.num_nodes + 0.03
    assert older.predict([graph])[0] == pytest.approx(expected)
    assert older.operator_scale(graph) == pytest.approx(1.2)


def test_fusion_pairs_come_from_the_profiles_and_explain_groups_fused_nodes(trained, tmp_path):
    samples, model = trained
    graph = samples[0].graph
    fused = model.fused_with_producer(graph)
    ops = graph.op_types
    assert all(fused[i] for i, op in enumerate(ops) if op == "Relu" and ops[i - 1] == "Gemm")
    assert not any(fused[i] for i, op in enumerate(ops) if op == "Gemm")
    save_operator_model(model, tmp_path / "ops", {"name": "ops", "device_key": "cpu:test"})
    predictor = Predictor.load(tmp_path / "ops")
    prediction = predictor.predict_graphs([graph])[0]
    rows = predictor.explain(graph, prediction, "infer_time_ms", top=50)
    gemms = [r for r in rows if r["op_type"] == "Gemm"]
    followed = {graph.node_names[i - 1]: graph.node_names[i] for i, op in enumerate(ops) if op == "Relu"}
    assert len(gemms) == ops.count("Gemm") and followed
    assert all(r["fused"] == [r["node"], *([followed[r["node"]]] if r["node"] in followed else [])] for r in gemms)
    assert not any(r["op_type"] == "Relu" for r in rows)  # fused into its Gemm, not a kernel of its own
    assert [r["infer_time_ms"] for r in rows] == sorted((r["infer_time_ms"] for r in rows), reverse=True)
    assert 0.5 < sum(r["share"] for r in rows) <= 1.0
    with pytest.raises(ValueError, match="infer_time_ms only"):
        predictor.explain(graph, prediction, "train_time_ms")


def test_saved_predictions_equal_the_fitted_model_and_a_base_serves_the_other_metrics(trained, tmp_path):
    samples, model = trained
    graphs = [s.graph for s in samples[:5]]
    alone = Predictor.load(save_operator_model(model, tmp_path / "alone", {"name": "alone", "device_key": "k"}))
    assert isinstance(alone, OperatorPredictor) and alone.metrics == ("infer_time_ms",)
    got = [p.values["infer_time_ms"] for p in alone.predict_graphs(graphs)]
    assert got == pytest.approx(list(model.predict(graphs)), rel=1e-9)
    base_dir = train_tiny_predictor(tmp_path / "base-src", members=1)
    base = Predictor.load(base_dir)
    both = Predictor.load(save_operator_model(model, tmp_path / "both", {"name": "both", "device_key": "k"},
                                              base=base_dir))
    assert both.metrics[0] == "infer_time_ms" and set(both.metrics[1:]) == set(base.metrics) - {"infer_time_ms"}
    mixed = both.predict_graphs(graphs)
    from_base = base.predict_graphs(graphs)
    for m, b, t in zip(mixed, from_base, got):
        assert m.values["infer_time_ms"] == pytest.approx(t)
        assert all(m.values[k] == pytest.approx(b.values[k]) for k in both.metrics[1:])
    assert both.version != alone.version


def test_fitting_needs_profiles_and_inference_time(trained):
    samples, _ = trained
    with pytest.raises(ValueError, match="at least 5 models"):
        fit_operator_model(samples[:3])
    with pytest.raises(ValueError, match="inference only"):
        fit_operator_model(samples, metric="train_time_ms")


def test_fit_scores_operator_trees_beside_the_simple_models_and_saves_the_winner(trained, tmp_path):
    from seernet.fit import FitRequest, run_fit

    samples, _ = trained
    request = FitRequest(tmp_path / "rows.csv", "infer_time_ms", tmp_path / "fitted")
    selection = run_fit(request, ("operator_trees", "ridge"), list(samples), "cpu:test")
    assert set(selection["candidates"]) == {"operator_trees", "ridge"}
    loaded = Predictor.load(tmp_path / "fitted")
    assert isinstance(loaded, OperatorPredictor) == (selection["chosen"] == "operator_trees")
    unprofiled = [Sample(s.key, s.family, s.graph, s.targets) for s in samples]
    selection = run_fit(FitRequest(tmp_path / "rows.csv", "infer_time_ms", None), ("operator_trees", "ridge"),
                        unprofiled)
    assert set(selection["candidates"]) == {"ridge"}  # no profiles: operator trees do not apply
    with pytest.raises(ValueError, match="none of the methods"):
        run_fit(FitRequest(tmp_path / "rows.csv", "infer_time_ms", None), ("operator_trees",), unprofiled)


def test_a_preferred_method_wins_unless_another_ranks_clearly_better(trained, tmp_path, monkeypatch):
    from seernet import fit
    from seernet.fit import FitRequest, run_fit

    samples, _ = trained
    request = FitRequest(tmp_path / "rows.csv", "infer_time_ms", None, prefer="operator_trees", val_fraction=0.5)
    selection = run_fit(request, ("operator_trees", "ridge"), list(samples))
    spearman = {k: v["spearman"] for k, v in selection["candidates"].items()}
    assert selection["chosen"] == "operator_trees" and "operator_trees unless" in selection["by"]
    assert spearman["operator_trees"] >= max(spearman.values()) - fit.PREFER_MARGIN
    monkeypatch.setattr(fit, "PREFER_MARGIN", -1.0)  # a margin nothing meets: the ordinary ranking decides
    plain = run_fit(FitRequest(tmp_path / "rows.csv", "infer_time_ms", None, val_fraction=0.5), ("operator_trees", "ridge"),
                    list(samples))
    assert run_fit(request, ("operator_trees", "ridge"), list(samples))["chosen"] == plain["chosen"]


def test_a_prior_device_model_is_corrected_by_a_few_rows_of_another(trained):
    from seernet.trees import predict_trees

    _, prior = trained
    slower_gemm = {**EFFICIENCY, "Gemm": 6.0}  # another device: its GEMMs run at half the speed
    other = profiled_mlps(slower_gemm)
    few, rest = other[::2], other[1::2]
    model = fit_operator_model(few, prior=prior)
    truth = np.array([s.targets["infer_time_ms"] for s in rest])
    assert np.median(np.abs(model.predict([s.graph for s in rest]) / truth - 1)) < 0.1
    assert np.median(prior.predict([s.graph for s in rest]) / truth) < 0.8  # the prior alone is off
    assert model.params["roofline"] == prior.params["roofline"]
    assert len(model.arrays["roots"]) > len(prior.arrays["roots"])  # the prior's trees, then the correction's
    table = operator_table(rest[0].graph)
    correction = predict_trees(table, model.arrays, model.params) - predict_trees(table, prior.arrays, prior.params)
    gemm = [i for i, op in enumerate(rest[0].graph.op_types) if op == "Gemm"]
    assert correction[gemm] == pytest.approx(np.log(2), abs=0.05)  # the correction learned: GEMMs at half speed


def test_the_trees_see_how_much_a_vector_unit_pads_each_convolutions_channels():
    from onnx import TensorProto, helper

    from seernet.graph import build_graph
    from seernet.operator_trees import CHANNEL_BLOCKS, channel_padding

    def weight(name, *dims):
        return helper.make_tensor(name, TensorProto.FLOAT, dims, np.zeros(int(np.prod(dims)), np.float32))

    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),  # 27 → 48
             helper.make_node("Conv", ["a", "w2"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=2)]  # 24 per group
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 27, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 48, 8, 8])],
                              [weight("w1", 48, 27, 3, 3), weight("w2", 48, 24, 3, 3)])
    perf = build_graph(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    assert CHANNEL_BLOCKS == (8, 16)
    padding = channel_padding(perf)  # in /8, in /16, out /8, out /16
    np.testing.assert_allclose(padding[0], [32 / 27, 32 / 27, 1.0, 1.0])
    np.testing.assert_allclose(padding[1], [1.0, 32 / 24, 1.0, 32 / 24])
    table = operator_table(perf)
    first = OPERATOR_FEATURES.index("in_channel_padding_8")
    np.testing.assert_allclose(table[:, first:first + 4], padding)


def test_other_devices_rows_teach_the_trees_without_setting_this_devices_level(trained):
    """Auxiliary rows (another device, marked so) enter the trees' fit; predictions read this device's column,
    so a device whose GEMMs run at half speed is predicted at its own speed from half of its rows."""
    samples, _ = trained
    slower_gemm = {**EFFICIENCY, "Gemm": 6.0}
    own = profiled_mlps(slower_gemm)
    few, rest = own[::2], own[1::2]
    pooled = fit_operator_model(few, auxiliary=samples)
    truth = np.array([s.targets["infer_time_ms"] for s in rest])
    assert np.median(np.abs(pooled.predict([s.graph for s in rest]) / truth - 1)) < 0.1
    other_device = fit_operator_model(samples)
    assert np.median(other_device.predict([s.graph for s in rest]) / truth) < 0.8  # the other device alone is off
    table = operator_table(rest[0].graph)
    assert (table[:, OPERATOR_FEATURES.index("this_device")] == 1).all()
    assert (operator_table(rest[0].graph, this_device=False)[:, -1] == 0).all()
    with pytest.raises(ValueError, match="at least 5 models"):  # auxiliary rows do not count as this device's
        fit_operator_model(few[:4], auxiliary=samples)


def test_a_model_saved_before_the_device_column_loads_and_predicts_as_before(trained, tmp_path):
    samples, model = trained
    spec = {**model.spec(), "features": list(OPERATOR_FEATURES[:-1])}  # what an older version saved
    model.save(tmp_path)
    loaded = OperatorModel.load(tmp_path, spec)
    graphs = [s.graph for s in samples]
    assert loaded.predict(graphs) == pytest.approx(model.predict(graphs))
    with pytest.raises(ValueError, match="refit"):
        OperatorModel.load(tmp_path, {**spec, "features": list(OPERATOR_FEATURES[:-2])})


def _embedding_graph(vocab: int):
    """ids [1, 16] → Gather from a vocab × 64 table → Shape → Slice of the table's first 4 rows: what an
    embedding lookup, a shape query and a slice read is a small part of their inputs.  A training graph: an
    inference computes the slice of a weight once at load (``seernet.folding``)."""
    from onnx import TensorProto, helper, numpy_helper

    from seernet.graph import build_graph

    table = numpy_helper.from_array(np.zeros((vocab, 64), np.float32), "table")
    consts = [numpy_helper.from_array(np.array(v, np.int64), n) for n, v in
              (("starts", [0]), ("ends", [4]), ("axes", [0]))]
    nodes = [helper.make_node("Gather", ["table", "ids"], ["emb"]),
             helper.make_node("Shape", ["emb"], ["shape"]),
             helper.make_node("Slice", ["table", "starts", "ends", "axes"], ["rows"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("ids", TensorProto.INT64, [1, 16])],
                              [helper.make_tensor_value_info("shape", TensorProto.INT64, [3]),
                               helper.make_tensor_value_info("rows", TensorProto.FLOAT, [4, 64])],
                              [table, *consts])
    return build_graph(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), training=True)


def test_gathers_slices_and_shapes_read_what_they_use_not_their_whole_inputs():
    """An embedding lookup of 16 tokens reads 16 rows whatever the vocabulary; a model fitted before reads
    (and predicts) as it was fitted."""
    from seernet.operator_trees import ROOFLINE, node_bytes

    small, large = _embedding_graph(1_000), _embedding_graph(100_000)
    gather, shape, sliced = (large.op_types.index(op) for op in ("Gather", "Shape", "Slice"))
    whole_reads = {k: v for k, v in ROOFLINE.items() if k != "bounded_reads"}
    bounded, whole = node_bytes(large), node_bytes(large, whole_reads)
    assert whole[gather, 1] == 100_000 * 64 * 4  # the table, as the graph counts it
    assert bounded[gather, :2].sum() <= bounded[gather, 2] * 2 and bounded[gather, 2] == 16 * 64 * 4
    assert bounded[shape, :2].sum() == 0 and whole[shape, 0] == 16 * 64 * 4
    assert bounded[sliced, :2].sum() <= 2 * 4 * 64 * 4 < whole[sliced, 1]
    assert ROOFLINE["bounded_reads"]
    np.testing.assert_allclose(roofline_ms(large), roofline_ms(small))  # the vocabulary no longer counts
    before = {k: v for k, v in ROOFLINE.items() if k != "bounded_reads"}  # a model saved before the rule
    assert roofline_ms(large, before)[gather] > 50 * roofline_ms(large)[gather]
    byte_columns = [OPERATOR_FEATURES.index(f"log1p_{n}") for n in ("bytes_read_act", "bytes_read_weight")]
    assert (operator_table(large)[:, byte_columns] == operator_table(small)[:, byte_columns]).all()
    assert (operator_table(large, roofline=whole_reads)[gather, byte_columns[1]]
            > operator_table(small, roofline=whole_reads)[gather, byte_columns[1]])


def test_a_model_saved_before_bounded_reads_predicts_with_whole_tensor_reads(trained):
    samples, model = trained
    old = OperatorModel(model.arrays, {**model.params, "roofline": {k: v for k, v in model.params["roofline"].items()
                                                                     if k not in ("bounded_reads", "weight_aliases")}},
                        model.metric)
    graph = _embedding_graph(100_000)
    gather = graph.op_types.index("Gather")
    assert model.params["roofline"]["bounded_reads"]
    assert old.node_ms(graph)[gather] > 50 * model.node_ms(graph)[gather]
    np.testing.assert_allclose(old.predict([s.graph for s in samples]), model.predict([s.graph for s in samples]))


def test_an_identity_of_a_shared_weight_is_the_weight():
    """ALBERT's export: one weight, an Identity of it per use; the runtime drops the Identities, so they move
    nothing and their MatMuls read a weight, as the MatMul reading the initializer directly does.  An inference
    graph leaves them out (``seernet.folding``); a training graph keeps them and the roofline reads through."""
    from onnx import TensorProto, helper, numpy_helper

    from seernet.graph import build_graph
    from seernet.operator_trees import ROOFLINE, node_bytes

    nodes = [helper.make_node("Identity", ["w"], ["w1"]), helper.make_node("MatMul", ["x", "w1"], ["a"]),
             helper.make_node("Identity", ["w"], ["w2"]), helper.make_node("MatMul", ["a", "w2"], ["b"]),
             helper.make_node("MatMul", ["b", "w"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 64])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 64])],
                              [numpy_helper.from_array(np.ones((64, 64), np.float32), "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    inference = build_graph(model)
    assert inference.op_types == ["MatMul"] * 3
    assert (node_bytes(inference) == node_bytes(inference)[2]).all()
    perf = build_graph(model, training=True)
    ops = perf.op_types
    first, second, direct = (i for i, op in enumerate(ops) if op == "MatMul")
    traffic = node_bytes(perf)
    np.testing.assert_array_equal(traffic[first], traffic[direct])
    np.testing.assert_array_equal(traffic[second], traffic[direct])
    assert traffic[direct, 1] == 64 * 64 * 4 and traffic[direct, 0] == 8 * 64 * 4
    assert (traffic[[i for i, op in enumerate(ops) if op == "Identity"]] == 0).all()
    before = node_bytes(perf, {k: v for k, v in ROOFLINE.items() if k != "weight_aliases"})
    assert before[first, 1] == 0 and before[first, 0] == 8 * 64 * 4 + 64 * 64 * 4  # x and the "activation" w1


def test_kernels_measured_alone_teach_how_a_fused_kernels_time_divides():
    """A device whose Relu costs 0.2× its roofline time and whose Gemm 3×, profiled once with Gemm+Relu fused
    and once unfused.  Split by roofline, a fused kernel gives its Relu a fifth of the Gemm's time, and the trees
    learn a Relu near 2× (the fused labels outvote the unfused ones).  Re-split by each round's predictions,
    the labels move to what the unfused kernels say."""
    efficiency = {"Gemm": 3.0, "Relu": 0.2}
    graphs = [mlp_graph([w, w // 2, w // 4], b) for w in (32, 64, 128) for b in (1, 2, 4, 8)]
    samples = [profiled(g, f"fused{i}", efficiency) for i, g in enumerate(graphs)]
    samples += [profiled(g, f"alone{i}", efficiency, fuse=False) for i, g in enumerate(graphs)]

    def learned(model: OperatorModel) -> dict[str, float]:
        ratios: dict[str, list[float]] = {"Gemm": [], "Relu": []}
        for g in graphs:
            efficiencies = model.node_ms(g) / roofline_ms(g)
            for op, values in ratios.items():
                values.extend(efficiencies[[i for i, o in enumerate(g.op_types) if o == op]])
        return {op: float(np.median(values)) for op, values in ratios.items()}

    by_roofline = learned(fit_operator_model(samples, split_rounds=0))
    resplit_model = fit_operator_model(samples)
    resplit = learned(resplit_model)
    assert resplit_model.params["label_split_rounds"] == LABEL_SPLIT_ROUNDS >= 1
    assert by_roofline["Relu"] > 1.5
    assert abs(resplit["Relu"] - 0.2) < 0.5 * abs(by_roofline["Relu"] - 0.2)
    assert abs(resplit["Gemm"] - 3.0) < 0.5 * abs(by_roofline["Gemm"] - 3.0)
    sample = samples[0]  # whatever the split, a kernel's labels sum to its time
    split = np.random.default_rng(0).uniform(0.1, 1.0, sample.graph.num_nodes)
    times, group = node_times(sample, split), sample.operators.node_group
    assert np.bincount(group[group >= 0], weights=times[group >= 0]) == pytest.approx(sample.operators.group_ms)
