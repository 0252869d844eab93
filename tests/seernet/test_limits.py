"""Limits checked before work: budgets, folding bounds, config schemas, structure counts."""
from __future__ import annotations

import dataclasses
import resource

import pytest

from seernet.errors import BuildBudgetError, GraphBuildError, LimitExceededError
from seernet.graph import build_graph
from seernet.settings import DEFAULT_LIMITS, Limits
from seernet.spaces import ConfigTooLargeError, ModelConfig, check_config
from tests.reliability import hostile_models as H


def test_cpu_budget_refuses_a_slow_build_naming_the_limit():
    """A 5,000-operator chain costs ~13 ms on the fast lane (seernet.fast_graph), far more on the whole-model
    path: a 2 ms budget stops either."""
    limits = dataclasses.replace(DEFAULT_LIMITS, max_build_cpu_s=0.002)
    with pytest.raises(BuildBudgetError, match="max_build_cpu_s"):
        build_graph(H.deep_chain(5000), limits=limits)


def test_folding_bombs_allocate_nothing():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for model in (H.constant_of_shape_bomb(40000), H.expand_bomb(40000), H.range_bomb(10**9)):
        with pytest.raises(GraphBuildError):
            build_graph(model)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100 * 1024  # KiB


def test_small_shape_subgraphs_still_fold():
    """The bound must not stop the folding that real models need (torch's expand(B, -1, -1))."""
    import torch

    from seernet.export import export_module

    class Expander(torch.nn.Module):
        def forward(self, x):
            return x + torch.zeros(1, 4).expand(x.shape[0], -1)

    graph = build_graph(export_module(Expander(), torch.randn(2, 4)), batch_size=5)
    assert graph.num_nodes >= 1


def test_structure_limits_come_from_settings(monkeypatch):
    monkeypatch.setenv("PERFSEER_MAX_EDGES", "10")
    limits = Limits.from_env()
    assert limits.max_edges == 10
    with pytest.raises(LimitExceededError, match="max_edges"):
        build_graph(H.deep_chain(20), limits=limits)
    monkeypatch.setenv("PERFSEER_MAX_NODES", "lots")
    with pytest.raises(ValueError, match="PERFSEER_MAX_NODES"):
        Limits.from_env()


@pytest.mark.parametrize("space,arch,error", [
    ("mlp", {"widths": [20000, 20000]}, ValueError),
    ("mlp", {"widths": [64], "depth": 3}, ValueError),
    ("mlp", {"widths": [16384] * 64}, ConfigTooLargeError),
    ("nasbench201", {"arch_str": "|bogus~0|"}, ValueError),
    ("cnn", {"stem_width": 16, "stages": [{"style": "vgg", "depth": 1, "width": 32, "params": {"x": 1}}]}, ValueError),
    ("vit", {"depth": 2, "width": 64, "heads": 2, "mlp_ratio": True, "patch_size": 8}, ValueError),
])
def test_configs_are_checked_before_building(space, arch, error):
    with pytest.raises(error):
        check_config(ModelConfig(space, arch), DEFAULT_LIMITS.max_config_params, DEFAULT_LIMITS.max_config_gflops)


def test_every_sampled_config_passes_its_schema():
    from seernet.spaces import SPACES

    for space in SPACES.values():
        for config in space.sample_n(5, seed=3):
            assert check_config(config, DEFAULT_LIMITS.max_config_params, 1e6).arch == config.arch


def test_a_nasbench201_config_is_sized_by_its_largest_cell_and_counted_only_above_the_limits():
    from seernet.spaces import get_space
    from seernet.spaces.nasbench201 import LARGEST_CELL

    space = get_space("nasbench201")
    for size in (8, 32, 64):
        params_bound, flops_bound = space.size_bound(ModelConfig("nasbench201", {"arch_str": LARGEST_CELL},
                                                                 1, size))
        for sampled in space.sample_n(10, seed=size):
            config = ModelConfig("nasbench201", sampled.arch, 1, size)
            assert space.param_count(config) <= params_bound
            assert space.forward_flops(config) <= flops_bound
    # a limit below the bound is checked by counting: a small cell passes, the largest is refused
    small = ModelConfig("nasbench201", {"arch_str": "|skip_connect~0|+|none~0|skip_connect~1|+|none~0|none~1|"
                                                    "skip_connect~2|"}, 1, 32)
    largest = ModelConfig("nasbench201", {"arch_str": LARGEST_CELL}, 1, 32)
    limit_gflops = space.forward_flops(largest) / 1e9 * 0.9
    assert check_config(small, DEFAULT_LIMITS.max_config_params, limit_gflops).arch == small.arch
    with pytest.raises(ConfigTooLargeError, match="GFLOPs"):
        check_config(largest, DEFAULT_LIMITS.max_config_params, limit_gflops)
