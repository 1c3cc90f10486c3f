"""Figures: image grids, plots and (later) reports. Everything writes files atomically."""
