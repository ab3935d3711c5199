"""Write a node's detector as a gateway bundle: encoder(s) as ONNX, the rest as arrays and JSON.

The reader, :func:`fedcl.edge.load_bundle`, needs neither torch nor flwr; this side does.

Typical use::

    export_node("runs/latest", "Client-1", "bundle/")     # what `fedcl export` does
"""

from fedcl.export._onnx import encoders_to_onnx
from fedcl.export._writer import export_node, write_bundle

__all__ = ["encoders_to_onnx", "export_node", "write_bundle"]
