"""A NAS-Bench-201 config's graph built straight from its arch string equals the graph of its exported ONNX."""
from __future__ import annotations

import random

import numpy as np
import pytest

from seernet.export import export_config
from seernet.graph import build_graph
from seernet.predictor import Predictor
from seernet.spaces import get_space
from seernet.spaces.nasbench201 import NasBench201Space, is_connected
from seernet.spaces.nasbench201_graph import nasbench201_graph

from ..conftest import SHIPPED_PREDICTOR

OPS = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]
ARRAYS = ("node_op", "node_category", "node_x", "edge_index", "edge_x", "global_x")


def _arch(ops: list[str]) -> str:
    return "|{}~0|+|{}~0|{}~1|+|{}~0|{}~1|{}~2|".format(*ops)


# the cases the exporter treats specially, then random cells
CASES = [
    (_arch(["nor_conv_3x3"] * 6), 2, 32),  # ends on a conv: the last BatchNorm folds into it
    (_arch(["avg_pool_3x3"] * 6), 1, 16),  # identical pools on one tensor: computed once
    (_arch(["skip_connect"] * 6), 3, 8),  # no operator in the cell at all
    (_arch(["nor_conv_1x1", "nor_conv_3x3", "nor_conv_1x1", "nor_conv_3x3", "nor_conv_3x3", "none"]), 4, 32),
    # ^ node 2 is dead: its ReLU of node 1 survives where the live call made it, not where the dead one did
    (_arch(["avg_pool_3x3", "nor_conv_3x3", "avg_pool_3x3", "nor_conv_3x3", "avg_pool_3x3", "none"]), 3, 16),
    (_arch(["none", "nor_conv_3x3", "none", "skip_connect", "none", "nor_conv_1x1"]), 1, 64),
]
rng = random.Random(201)
CASES += [(_arch([rng.choice(OPS) for _ in range(6)]), rng.choice([1, 2, 4]), rng.choice([8, 32, 64]))
          for _ in range(14)]


@pytest.mark.parametrize("arch_str,batch,size", CASES)
def test_the_direct_graph_is_the_exported_graph(arch_str, batch, size):
    direct = nasbench201_graph(arch_str, batch, size)
    config = NasBench201Space.config_for(arch_str, batch, size)
    if direct is None:  # only for cells whose output ignores the input
        assert not is_connected(arch_str)
        return
    exported = build_graph(export_config(config), batch_size=batch)
    for name in ARRAYS:
        assert np.array_equal(getattr(direct, name), getattr(exported, name)), name
    assert direct.op_types == exported.op_types
    assert direct.node_names == exported.node_names  # operator profiles map onto nodes by these names
    assert direct.folded_at_load == exported.folded_at_load  # the Identity copies of weights (seernet.folding)
    assert direct.folded_bytes == exported.folded_bytes == 0  # Identities hand their input on: no copies


@pytest.mark.parametrize("arch_str,batch,size", CASES[:3])
def test_the_direct_training_graph_keeps_what_an_inference_computes_at_load(arch_str, batch, size):
    direct = nasbench201_graph(arch_str, batch, size, training=True)
    exported = build_graph(export_config(NasBench201Space.config_for(arch_str, batch, size)), batch_size=batch,
                           training=True)
    for name in ARRAYS:
        assert np.array_equal(getattr(direct, name), getattr(exported, name)), name
    assert direct.op_types == exported.op_types and "Identity" in direct.op_types
    assert direct.folded_at_load == exported.folded_at_load == 0 and exported.folded_bytes == 0


def test_cells_it_does_not_describe_are_left_to_the_export():
    assert nasbench201_graph(_arch(["none"] * 6), 1, 32) is None  # the output does not depend on the input
    assert nasbench201_graph(_arch(["skip_connect"] * 6), 1, 30) is None  # 30 is not divisible by 4


def test_predictions_from_the_direct_graph_equal_the_exported_ones():
    predictor = Predictor.load(SHIPPED_PREDICTOR)
    archs = [arch for arch, _, _ in CASES[:6]]
    direct = [nasbench201_graph(a, 2, 32) for a in archs]
    exported = [build_graph(export_config(NasBench201Space.config_for(a, 2, 32)), batch_size=2) for a in archs]
    for d, e in zip(predictor.predict_graphs(direct), predictor.predict_graphs(exported)):
        assert d.values == pytest.approx(e.values, rel=1e-6)


def test_the_space_uses_it_and_the_config_graph_needs_no_export():
    config = NasBench201Space.config_for(CASES[3][0], 2, 32)
    graph = get_space("nasbench201").direct_graph(config)
    assert graph is not None and graph.num_nodes > 100


def test_a_bank_that_starts_over_gives_the_same_graph(monkeypatch):
    """Feature rows come from a bounded per-process bank: a build after it started a new generation (here,
    after every build) must give exactly the graph of a build from a warm bank."""
    from seernet.spaces import nasbench201_graph as module

    arch, batch, size = CASES[4]
    warm = nasbench201_graph(arch, batch, size)
    monkeypatch.setattr(module._NODE_ROWS, "max_rows", 0)
    monkeypatch.setattr(module._EDGE_ROWS, "max_rows", 0)
    nasbench201_graph(CASES[5][0], 2, 16)  # fills the bank past its bound: the next build starts a new one
    cold = nasbench201_graph(arch, batch, size)
    for name in ARRAYS:
        assert np.array_equal(getattr(warm, name), getattr(cold, name)), name
    assert warm.node_names == cold.node_names
