"""Small helpers that scripts import under mitmproxy's names."""
