"""Pure-Python reference implementations of ``treadle._core``, for differential tests and
as benchmark baselines. Not part of the package."""
