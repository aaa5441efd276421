"""Leaderboard: submissions scored on hidden ground truth.

Not implemented yet: it arrives with its own issue. The package exists so the layout is fixed.
"""
