"""Tests of the backplane: one contract, two implementations."""
