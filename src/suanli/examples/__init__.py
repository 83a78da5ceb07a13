"""Example alliance and jobs, shipped with the package so that `suanli demo` runs anywhere."""
