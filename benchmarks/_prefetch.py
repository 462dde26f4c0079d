"""The input share of a training step: how long the training loop waits for its next batch.

The loop is emulated on the host: batches come out of Keras' own ``PyDataset`` adapter (the
ordered queue that ``fit`` starts when the generator has workers, or plain calls between
steps when it has none), and every step is a sleep of the given step time, during which the
host is free, as it is while an accelerator trains. The wait is the time ``next()`` takes;
the share is ``wait / (wait + step)`` over one epoch, the first batch of the epoch (when the
queue is still empty) included.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter


@dataclass(frozen=True)
class InputWait:
    """One emulated epoch.

    Attributes:
        workers: The generator's worker threads (below 2: none, batches made between steps).
        step_s: The emulated step.
        steps: Steps of the epoch.
        wait_s: Mean wait for a batch per step.
        first_wait_s: The wait for the epoch's first batch.
        median_wait_s: Median wait per step.
    """

    workers: int
    step_s: float
    steps: int
    wait_s: float
    first_wait_s: float
    median_wait_s: float

    @property
    def share(self) -> float:
        """Input's share of a step: wait / (wait + step)."""
        return self.wait_s / (self.wait_s + self.step_s)


def input_wait(generator, step_s: float, steps: int, workers: int, queue: int) -> InputWait:
    """Emulate one epoch of ``steps`` steps of ``step_s`` seconds over a generator with ``workers`` threads.

    The generator is changed in place (its epoch length and worker settings) and advanced by
    one epoch.
    """
    generator.steps = steps
    generator.workers, generator.use_multiprocessing, generator.max_queue_size = workers, False, queue
    adapter = PyDatasetAdapter(generator, shuffle=False)
    adapter.on_epoch_begin()
    waits = []
    try:
        batches = adapter.get_numpy_iterator()
        for _ in range(steps):
            started = time.perf_counter()
            next(batches)
            waits.append(time.perf_counter() - started)
            time.sleep(step_s)
        for _ in batches:  # the adapter stops its queue after the epoch's last batch
            pass
    finally:
        adapter.on_epoch_end()
    return InputWait(workers, step_s, steps, sum(waits) / steps, waits[0], statistics.median(waits))
