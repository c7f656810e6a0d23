"""fiqa-bench plug-in package."""
