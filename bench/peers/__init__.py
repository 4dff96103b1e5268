"""Other frameworks serving treadle's routes, for http_compare.py to measure treadle against."""
