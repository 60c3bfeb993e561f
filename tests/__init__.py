"""The trial test suite of twisted_mitm."""
