"""Test-only (on PYTHONPATH for the node-loss tests, never in the product): every trial of a
sweep sleeps ``SWEEPER_TEST_EPOCH_S`` seconds an epoch and reports made-up metrics instead of
training, so a test controls how long a trial runs and pays for no TensorFlow import. While
the file ``SWEEPER_TEST_HOLD`` names holds a trial's id, that trial waits after its first
epoch: a test can act while it is surely mid-trial.

Loaded by every Python process of the sweep (the driver and Ray's workers alike); the driver
looks ``trainable.run_trial`` up when it builds each Tuner, and Ray's workers unpickle the
swapped-in function by reference from this module.
"""

import os

if os.environ.get("SWEEPER_TEST_EPOCH_S"):
    from sweeper import trainable

    def _held(tid):
        hold = os.environ.get("SWEEPER_TEST_HOLD")
        try:
            return bool(hold) and open(hold).read().strip() == tid
        except OSError:
            return False

    def quick_trial(config, context):
        import time

        from ray import tune

        from sweeper.records import TrialReport
        from sweeper.space import config_trial

        params, tid = config_trial(config)
        for epoch in range(1, int(params["epochs"]) + 1):
            time.sleep(float(os.environ["SWEEPER_TEST_EPOCH_S"]))
            tune.report(TrialReport(trial_id=tid, epoch=epoch, train_loss=0.1, metrics={
                "val_psnr": 20.0 + epoch, "val_ssim": 0.5, "val_mae": 0.05}).to_dict())
            while _held(tid):
                time.sleep(0.1)

    trainable.run_trial = quick_trial
