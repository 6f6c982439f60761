"""stream-monitor: online drift, data-quality and performance monitoring for ML models on Kafka."""

import os

# The linear algebra here is per micro-batch on matrices of at most a few dozen features a side, where BLAS
# threads only spin: measured on a 1M-event replay, OpenBLAS's default threads took 13.8 s of CPU for 7.3 s
# of wall time, one thread 7.5 s for 7.8 s, and they halve the speed of replay --workers and of the service
# on a small machine. Set before numpy is first imported; a value the user set wins.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

__version__ = "0.1.0"
