"""Prediction: scoring and reports, the scene pass, classification and change detection."""
