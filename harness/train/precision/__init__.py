"""Precision backends, one module each, chosen by name through registry.RECIPES."""
