"""Baseline policies FATE is measured against; one small module each, one interface."""
