"""Downstream and synthetic tasks: data, metrics and the recipes that train on them."""
