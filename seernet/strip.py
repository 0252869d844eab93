"""Weight stripping (see :mod:`perfseer_client.strip`, shared with the client so both strip identically)."""
from perfseer_client.strip import (DEFAULT_MIN_BYTES, FLOAT_TYPES, STRIPPED_KEY, is_strippable, strip_bytes,
                                   strip_weights, tensor_nbytes)

__all__ = ["DEFAULT_MIN_BYTES", "FLOAT_TYPES", "STRIPPED_KEY", "is_strippable", "strip_bytes", "strip_weights",
           "tensor_nbytes"]
