"""Comparison systems (LISA, GLaMM, VLPart, PartGLEE, cascade) writing MixedParts predictions.

Not implemented yet: they arrive with their own issue. The package exists so the layout is fixed.
"""
