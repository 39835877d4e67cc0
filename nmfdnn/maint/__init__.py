"""Maintainer scripts: what only the Makefile and the test suite run, never the ``nmfdnn`` console
script — a one-node SLURM cluster (``make slurm-up``), SIGKILL-and-resume trials (``make
kill-resume``), the paper's claims, the README's generated blocks and the studies' index (``make
claims readme index``), MPI scaling (``make mpi``) and the start-up medians (``make startup``).
Each is ``python -m nmfdnn.maint.NAME``. The user commands live in :mod:`nmfdnn.tools`."""
