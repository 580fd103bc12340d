"""Comparing two backends' answers: pure comparison functions and the run that produces a report."""
