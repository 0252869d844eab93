"""SeerNet's layers, one a file: SynMM, GNPB, the graph-network block, PCGrad, and the network."""
from .gn_block import GraphNetworkBlock
from .gnpb import AttentionPooling, GlobalNode
from .pcgrad import PCGrad, project_conflicting
from .seernet import SeerNet, SeerNetConfig
from .synmm import MeanAggregation, SynMM

__all__ = ["AttentionPooling", "GlobalNode", "GraphNetworkBlock", "MeanAggregation", "PCGrad", "SeerNet",
           "SeerNetConfig", "SynMM", "project_conflicting"]
