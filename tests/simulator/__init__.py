"""Tests of the simulated Enterprise Manager (a package, so its module names stay unique)."""
