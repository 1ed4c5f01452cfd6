"""Accuracy evaluation on labelled folders (`--data DIR`, or $EDGE_TESTDATA)."""
