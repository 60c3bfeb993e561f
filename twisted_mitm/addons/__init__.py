"""Built-in addons; they use the same hooks as user scripts."""
