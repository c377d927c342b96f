"""Tests of the address book: one contract, two implementations."""
