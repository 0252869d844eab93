"""Model spaces: reproducible sampling, every CNN style, NAS-Bench-201 arch strings, runnable exports."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch

from seernet.export import export_config
from seernet.spaces import FAMILIES, SPACES, ModelConfig, get_space
from seernet.spaces.cnn import STYLES
from seernet.spaces.nasbench201 import (NasBench201Space, all_arch_strs, is_connected, ops_of, parse_arch_str)

ARCH = "|nor_conv_3x3~0|+|skip_connect~0|none~1|+|avg_pool_3x3~0|nor_conv_1x1~1|skip_connect~2|"


def test_sampling_is_reproducible_and_configs_round_trip():
    for space in SPACES.values():
        a, b = space.sample_n(5, seed=3), space.sample_n(5, seed=3)
        assert [c.to_json() for c in a] == [c.to_json() for c in b]
        assert a != space.sample_n(5, seed=4)
        for config in a:
            assert ModelConfig.from_json(config.to_json()) == config
            assert config.batch_size >= 1 and config.input_size in space.input_sizes()


def test_cnn_space_covers_all_five_styles():
    seen = {stage["style"] for c in SPACES["cnn"].sample_n(40, seed=0) for stage in c.arch["stages"]}
    assert seen == set(STYLES)
    assert len(SPACES["cnn"].sample_n(1)[0].arch["stages"]) == 4


def test_unknown_space_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown model space 'nope'"):
        get_space("nope")
    assert set(FAMILIES) == {"cnn", "nasbench201", "vit", "bert", "mlp", "timm", "hf"}


def test_nasbench201_arch_strings():
    assert ops_of(ARCH) == ["nor_conv_3x3", "skip_connect", "none", "avg_pool_3x3", "nor_conv_1x1", "skip_connect"]
    strs = all_arch_strs()
    assert len(strs) == 15625 and len(set(strs)) == 15625
    assert sum(not is_connected(s) for s in strs) == 341  # as in LatBench's README
    for bad in ["", "|conv~0|+|skip_connect~0|none~1|+|none~0|none~1|none~2|", ARCH.replace("~1|+", "~0|+")]:
        with pytest.raises(ValueError):
            parse_arch_str(bad)


def test_nasbench201_network_matches_the_standard_skeleton():
    net = NasBench201Space().build(NasBench201Space.config_for(ARCH))
    assert net.stem[0].out_channels == 16
    assert [m.conv_a[1].out_channels for m in net.cells if hasattr(m, "conv_a")] == [32, 64]
    assert sum(1 for m in net.cells if not hasattr(m, "conv_a")) == 15
    assert net.classifier.in_features == 64
    out = net.eval()(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10)


@pytest.mark.parametrize("space_name", sorted(SPACES))
def test_exported_onnx_runs_and_matches_torch(space_name):
    space = SPACES[space_name]
    config = space.sample_n(1, seed=5, max_gflops=0.3)[0]
    data = export_config(config)
    module = space.build_seeded(config)
    example = space.example_input(config)
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"input": example.numpy()})
    with torch.no_grad():
        expected = module(example).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-4)
