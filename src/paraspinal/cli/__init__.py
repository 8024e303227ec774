"""Command-line interface (``paraspinal``): the top layer, thin wrappers over ``pipeline``."""
