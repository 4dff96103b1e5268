"""Server-agnostic web kernel: routing, bodies, envelope, errors, headers."""
