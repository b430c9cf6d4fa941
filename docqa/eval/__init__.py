"""Batch evaluation: questions × strategies → answers, metrics, latency; tables, files and a plot."""
