"""Test-only (on PYTHONPATH for the resume test, never in the product): real training, but while
the file ``SWEEPER_TEST_HOLD_EPOCH`` names a trial's id, that trial waits after reporting its
first epoch (its checkpoint written): a test can end everything while it is surely mid-trial.

Loaded by every Python process of the sweep; Ray's workers look ``model.train.train`` up when a
trial starts, so they get the wrapper.
"""

import os

if os.environ.get("SWEEPER_TEST_HOLD_EPOCH"):
    import time
    from pathlib import Path

    import model.train as _train

    _real_train = _train.train

    def _held(tid):
        try:
            return Path(os.environ["SWEEPER_TEST_HOLD_EPOCH"]).read_text().strip() == tid
        except OSError:
            return False

    def train(params, dataset, *, on_epoch=None, checkpoint_path=None, **kwargs):
        tid = Path(checkpoint_path).stem if checkpoint_path else ""

        def on_epoch_then_hold(epoch, metrics):
            if on_epoch is not None:
                on_epoch(epoch, metrics)
            while epoch == 1 and _held(tid):
                time.sleep(0.1)

        return _real_train(params, dataset, on_epoch=on_epoch_then_hold, checkpoint_path=checkpoint_path, **kwargs)

    _train.train = train
