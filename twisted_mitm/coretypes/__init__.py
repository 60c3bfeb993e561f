"""Building blocks the models share (mitmproxy's C{coretypes})."""
