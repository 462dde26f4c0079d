"""What depends on the Keras backend: devices, the distribution of a run over them, seeds and determinism.

Keras 3 runs the models on TensorFlow (the default and the pinned install) or on JAX, chosen
by ``KERAS_BACKEND`` before Keras is imported. The models, losses, generators and the scene
pass are written with Keras and numpy alone; only these run-level choices differ:

* TensorFlow: ``--strategy`` picks a ``tf.distribute`` strategy, ``--logical-cpus`` splits the
  CPU into logical devices, and ``--seed`` switches on TensorFlow's op determinism and serial
  ops.
* JAX: ``tf.distribute`` does not exist there, so ``--strategy`` other than ``default`` is
  refused with one line; a run uses every device of the machine (every GPU, else the CPU)
  through ``keras.distribution.DataParallel`` when there is more than one, and
  ``--logical-cpus`` makes XLA show the CPU as that many devices (before JAX starts).
  XLA's CPU kernels are deterministic, so ``--seed`` seeds and that is all; on GPUs, XLA's
  deterministic ops are asked for with ``XLA_FLAGS=--xla_gpu_deterministic_ops=true``.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

from helpers.core.errors import InputError

TENSORFLOW = "tensorflow"


def backend() -> str:
    """The Keras backend of this process (``tensorflow``, ``jax`` ...)."""
    import keras

    return keras.backend.backend()


# ---------------------------------------------------------------------- devices
def configure_devices(logical_cpus: int | None) -> None:
    """Split the CPU into ``logical_cpus`` devices (before the backend starts its runtime).

    Raises:
        InputError: Below 1, or the backend already started with another device count.
    """
    if logical_cpus is None:
        return
    if logical_cpus < 1:
        raise InputError(f"--logical-cpus {logical_cpus}: must be at least 1")
    if backend() != TENSORFLOW:
        _xla_host_devices(logical_cpus)
        return
    import tensorflow as tf

    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * logical_cpus)
    except RuntimeError as error:
        raise InputError(f"--logical-cpus {logical_cpus}: TensorFlow is already initialised ({error})") from None


def _xla_host_devices(count: int) -> None:
    """Show the CPU to JAX as ``count`` devices (XLA reads the flag when JAX starts)."""
    flag = f"--xla_force_host_platform_device_count={count}"
    os.environ["XLA_FLAGS"] = " ".join(part for part in (os.environ.get("XLA_FLAGS", ""), flag) if part)
    import jax

    found = len(jax.devices("cpu"))
    if found != count:
        raise InputError(f"--logical-cpus {count}: JAX had already started with {found} CPU device(s)")


# ---------------------------------------------------------------------- distribution
class DataParallelRun:
    """The stand-in for a ``tf.distribute`` strategy under another backend: data parallelism over devices.

    With more than one device, Keras' distribution is set to ``DataParallel`` over them (each
    batch split across the devices, the weights replicated); with one, nothing is set.

    Attributes:
        devices: The devices the run uses.
    """

    def __init__(self, devices: list[str]) -> None:
        self.devices = devices
        if len(devices) > 1:
            import keras

            keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))

    @property
    def num_replicas_in_sync(self) -> int:
        """Devices a batch is split across (as ``tf.distribute`` names it)."""
        return len(self.devices)

    def scope(self) -> contextlib.AbstractContextManager[None]:
        """Nothing to enter: Keras' global distribution already applies to the models built next."""
        return contextlib.nullcontext()


def make_strategy(name: str) -> Any:
    """The ``tf.distribute`` strategy of ``--strategy``, or data parallelism over all devices under JAX.

    Raises:
        InputError: A ``tf.distribute`` strategy asked for under another backend.
    """
    current = backend()
    if current != TENSORFLOW:
        if name != "default":
            raise InputError(f"--strategy {name}: tf.distribute strategies need KERAS_BACKEND=tensorflow (this run "
                             f"uses {current}, which spreads a run over all devices by itself)")
        if current != "jax":
            return DataParallelRun(["default"])
        import keras

        return DataParallelRun(keras.distribution.list_devices())
    import tensorflow as tf

    if name == "mirrored":
        devices = [d.name for d in tf.config.list_logical_devices("GPU")]
        devices = devices or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=devices)
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def check_batch_split(batch_size: int, replicas: int) -> None:
    """Keras' data parallelism splits each batch evenly across the devices: refuse a batch that cannot be.

    Raises:
        InputError: Naming ``--batch-size``.
    """
    if backend() != TENSORFLOW and replicas > 1 and batch_size % replicas:
        raise InputError(f"--batch-size {batch_size}: must be a multiple of the {replicas} devices the run is "
                         "split across")


# ---------------------------------------------------------------------- seeds
def seed_everything(seed: int | None, deterministic: bool) -> str:
    """Seed Python, numpy and the backend (Keras' seed generator); make the arithmetic repeatable if asked.

    The generators draw from their own ``(seed, epoch, batch)`` streams; this seeds what they
    do not: the weight initialisers and any random op of the backend. Under TensorFlow,
    deterministic means its op determinism (deterministic kernels, at no measurable cost on
    the CPU) and one op at a time (one inter-op thread): on the CPU, ops that run concurrently
    made the gradients of the full-size FCN+ConvLSTM differ in the last bits from run to run
    even with op determinism (``benchmarks/training_input.py --determinism`` measures both).
    Serial ops can only be set before TensorFlow starts, as the scripts do; in a process where
    it already runs, op determinism alone is used. Under JAX, XLA's CPU kernels are
    deterministic already.

    Returns:
        What was done, for the run's log: ``none``, ``seeds``, ``op determinism, serial ops``,
        ``op determinism`` or ``XLA (deterministic on the CPU)``.
    """
    if seed is None:
        return "none"
    import keras

    keras.utils.set_random_seed(int(seed))
    if not deterministic:
        return "seeds"
    if backend() != TENSORFLOW:
        return f"{backend()}: XLA (deterministic on the CPU)"
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()
    try:
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # TensorFlow already initialised (a run started from Python after other work)
        return "op determinism"
    return "op determinism, serial ops"


def missing_kernel_errors() -> tuple[type[BaseException], ...]:
    """The backend's errors for an op without a deterministic kernel on the device (none outside TensorFlow)."""
    if backend() != TENSORFLOW:
        return ()
    import tensorflow as tf

    return (tf.errors.UnimplementedError,)
