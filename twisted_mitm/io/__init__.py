"""Flow files in mitmproxy 12's format: C{from twisted_mitm import io}, then
C{io.FlowReader(file).stream()} and C{io.FlowWriter(file).add(flow)}, as with mitmproxy.
"""

from twisted_mitm.io.io import FilteredFlowWriter, FlowFilter, FlowReader, FlowWriter, read_flows_from_paths
from twisted_mitm.version import FLOW_FORMAT_VERSION

__all__ = ["FLOW_FORMAT_VERSION", "FilteredFlowWriter", "FlowFilter", "FlowReader", "FlowWriter", "read_flows_from_paths"]
