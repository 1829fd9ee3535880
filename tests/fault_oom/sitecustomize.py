"""Fault injection for the out-of-memory test, loaded by every Python process of a sweep
(driver and Ray workers alike) through PYTHONPATH: a loss named ``oom`` that raises TF's
ResourceExhaustedError on its first step, as a batch too big for the device does."""

from model import losses


def _oom_factory(**_: object) -> object:
    def oom(y_true: object, y_pred: object) -> object:
        import tensorflow as tf

        raise tf.errors.ResourceExhaustedError(
            None, None, "OOM when allocating tensor with shape[8,64,32,32] and type float on /job:localhost (simulated)"
        )

    return oom


losses.LOSSES["oom"] = _oom_factory
