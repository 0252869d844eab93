"""SeerNet's layers, one a file: SynMM, GNPB, the graph-network block, and the network (PCGrad is training:
``seernet.pcgrad``)."""
from .gn_block import GraphNetworkBlock
from .gnpb import AttentionPooling, GlobalNode
from .seernet import SeerNet, SeerNetConfig
from .synmm import MeanAggregation, SynMM

__all__ = ["AttentionPooling", "GlobalNode", "GraphNetworkBlock", "MeanAggregation", "SeerNet", "SeerNetConfig",
           "SynMM"]
