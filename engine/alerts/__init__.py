"""Physiological alarm detectors and the alert engine that runs them per bed."""
