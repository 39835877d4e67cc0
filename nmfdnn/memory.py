"""The memory a run needs, estimated from its config before any work, against what this machine can
give it: a run that cannot fit is refused in one line that says both numbers, instead of a
``MemoryError`` (or the kernel's OOM killer) after minutes of work.

The estimate counts the arrays the method holds at once, each once (it is a lower bound: a refusal
means the run cannot fit, never that it might not):

* the data: the loaded training and test inputs (float32) and their copies on the backend in the
  run's dtype, the one-hot training targets;
* the weights ``W_1 .. W_d`` (and, for the backprop baseline, Adam's two moments);
* for the NMF method, the Gram matrix of a dense first layer's input and its eigenvectors (the input
  SVD of Sec. 3.3, ``n_in x n_in`` each) and each dense layer's ``n_i x n_i`` Gram matrix;
* one column set of the largest of ``solver.batch_size``, ``solver.ae_samples`` and the evaluation's
  chunk of 10,000 samples: the input and every layer's output for those columns, and each
  convolution's patch matrix (``c k^2`` rows by ``oh ow`` positions per sample).

Under an MPI launcher every process on this machine loads the data; the estimate is per process
times the processes the launcher puts on one machine.
"""

from __future__ import annotations

import os
import resource

EVAL_CHUNK = 10000  # columns per chunk of nmfdnn.method.network.evaluate
LOADED_ITEMSIZE = 4  # the loaders' float32 inputs

# The sizes of the data sets whose size is known before loading them: (train, test, features, classes)
KNOWN_SIZES = {"mnist": (60000, 10000, 784, 10), "fashion_mnist": (60000, 10000, 784, 10),
               "cifar10": (50000, 10000, 3072, 10)}


def gib(n: float) -> str:
    """``n`` bytes as GiB (or MiB below one GiB), for a message."""
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_available() -> int | None:
    """What this process's cgroup (v2, or v1's memory controller) still allows, if it sets a limit."""
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            with open(limit_file) as f:
                text = f.read().strip()
            if text == "max":
                return None
            with open(usage_file) as f:
                used = int(f.read().strip())
            limit = int(text)
        except (OSError, ValueError):
            continue
        if limit >= 1 << 60:  # v1's "no limit"
            return None
        return max(0, limit - used)
    return None


def _address_space_left() -> int | None:
    """What ``ulimit -v`` (RLIMIT_AS) leaves this process beyond what it has mapped already."""
    try:
        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    except (ValueError, OSError):
        return None
    if soft == resource.RLIM_INFINITY:
        return None
    try:
        with open("/proc/self/status") as f:
            size = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
    except (OSError, ValueError, StopIteration):
        size = 0
    return max(0, soft - size)


def shared_available_bytes() -> int | None:
    """What the processes on this machine can still allocate together: the machine's available memory
    (``MemAvailable`` of ``/proc/meminfo``, else the physical memory) or its cgroup's limit, the lesser."""
    found = [v for v in (_meminfo_available(), _cgroup_available()) if v is not None]
    if not found:
        try:
            found = [os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")]
        except (ValueError, OSError):
            return None
    return min(found)


def available_bytes() -> int | None:
    """The bytes this one process can still allocate: :func:`shared_available_bytes` or what its
    address-space limit (``ulimit -v``) leaves, the lesser; None where none of them can be read."""
    found = [v for v in (shared_available_bytes(), _address_space_left()) if v is not None]
    return min(found) if found else None


def processes_here() -> int:
    """How many processes of this run share this machine (1 without an MPI launcher)."""
    from .parallel import launcher_size

    size = launcher_size()
    if size <= 1:
        return 1
    for var in ("OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "MV2_COMM_WORLD_LOCAL_SIZE", "SLURM_NTASKS_PER_NODE"):
        v = os.environ.get(var, "")
        if v.isdigit() and int(v) > 0:
            return min(int(v), size)
    return size


def data_sizes(d) -> tuple[int, int, int, int] | None:
    """``(n_train, n_test, n_features, n_classes)`` of data-set config ``d`` as loaded (before any
    subset), when the config tells them; None otherwise (idx files: known once read)."""
    if d.name == "synthetic":
        image = d.get("image")
        n_in = 1
        for v in (image or [d.n_features]):
            n_in *= int(v)
        return int(d.n_train), int(d.n_test), n_in, int(d.n_classes)
    if d.name == "cifar10" and d.get("grayscale"):
        return 50000, 10000, 1024, 10
    return KNOWN_SIZES.get(d.name)


def _layer_sizes(cfg, n_in: int, shape) -> tuple[list[int], list[int], int, int]:
    """Per hidden layer: its output features per sample; per convolution: its patch-matrix entries
    per sample; the entries of the hidden layers' weights; the last hidden layer's width."""
    bias = int(bool(cfg.solver.get("bias", False)))
    outs, patches, weights = [], [], 0
    width = n_in
    convs = list(cfg.get("conv") or [])
    if convs and shape is not None:
        c, h, w = (int(v) for v in shape)
        for layer in convs:
            k, s = int(layer.kernel), int(layer.stride)
            p, q = int(layer.padding), int(layer.pool)
            oh, ow = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
            if oh < 1 or ow < 1:
                return [], [], 0, n_in  # does not fit: the conv check says so
            patches.append(c * k * k * oh * ow)
            weights += int(layer.channels) * (c * k * k + bias)
            c, h, w = int(layer.channels), oh // q, ow // q
            outs.append(c * h * w)
        width = c * h * w
    for n in cfg.hidden:
        weights += int(n) * (width + bias)
        outs.append(int(n))
        width = int(n)
    return outs, patches, weights, width


def estimate_bytes(cfg, sizes=None, shape=None, host_data: bool = True) -> int | None:
    """The bytes one process of the run of ``cfg`` needs at least (see the module's docstring), from
    ``sizes`` ``(n_train, n_test, n_features, n_classes)`` (default: :func:`data_sizes`) and the image
    ``shape`` of the samples (default: the config's); None when the sizes are not known yet.
    ``host_data=False``: the loaded inputs are in memory already (not counted)."""
    from .config.shapes import image_shape

    sizes = sizes or data_sizes(cfg.dataset)
    if sizes is None:
        return None
    n_train, n_test, n_in, n_classes = (int(v) for v in sizes)
    item = 4 if str(getattr(cfg.dtype, "value", cfg.dtype)) == "float32" else 8
    shape = shape or image_shape(cfg.dataset)
    outs, patches, hidden_weights, last = _layer_sizes(cfg, n_in, shape)
    weights = hidden_weights + n_classes * (last + int(bool(cfg.solver.get("bias", False))))
    kept_train = min(n_train, int(cfg.dataset.get("train_subset") or n_train))
    kept_test = min(n_test, int(cfg.dataset.get("test_subset") or n_test))
    data = (n_train + n_test) * n_in * LOADED_ITEMSIZE * int(host_data) + (kept_train + kept_test) * n_in * item \
        + kept_train * n_classes * item
    s = cfg.solver
    columns = min(max(int(s.get("batch_size", 1)), int(s.get("ae_samples", 1)), EVAL_CHUNK), max(kept_train, 1))
    per_column = n_in + sum(outs) + sum(patches) + n_classes
    copies = 3 if s.name == "bp" else 1  # Adam's first and second moments
    gram = 0
    if s.name == "nmf":  # the input's Gram matrix X X^T and its eigenvectors (Sec. 3.3), one Gram per layer
        first = n_in if not patches else None
        gram = 2 * first * first if first else 0
        gram += sum(n * n for n in outs[len(patches):])
    return data + (weights * copies + columns * per_column + gram) * item


def memory_problem(cfg, sizes=None, shape=None, host_data: bool = True) -> str | None:
    """Why this machine cannot hold the run of ``cfg`` (the estimate and what is available, in one
    line), or None: it fits, or its sizes are not known yet."""
    need = estimate_bytes(cfg, sizes, shape, host_data)
    if need is None:
        return None
    here = processes_here()
    shared, own = shared_available_bytes(), _address_space_left()
    who = ""
    if own is not None and need > own:  # this process's own address-space limit (ulimit -v)
        have = own
    elif shared is not None and need * here > shared:
        have, who = shared, f" x {here} processes on this machine" if here > 1 else ""
    else:
        return None
    return (f"this run needs about {gib(need)} of memory{who} (data, weights, batch and patch matrices), but only "
            f"{gib(have)} is available here: use smaller layers, batches or data (dataset.train_subset, "
            "solver.batch_size, solver.ae_samples), dtype=float32, or a machine with more memory")


def out_of_memory(e: MemoryError | None = None) -> str:
    """The one line of an allocation that failed although the estimate fitted."""
    what = f" ({e})" if e is not None and str(e) else ""
    have = available_bytes()
    left = f"; {gib(have)} is available now" if have is not None else ""
    return (f"out of memory{what}{left}: use smaller layers, batches or data (dataset.train_subset, "
            "solver.batch_size, solver.ae_samples) or dtype=float32")
