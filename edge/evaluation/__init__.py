"""Accuracy evaluation on labelled folders (default ../shared/testdata)."""
