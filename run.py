"""The write-up's entry point: ``python run.py --model_path P --dataset_dir D --dataset_name N``.

Same options as ``sweeper train`` (which accepts the write-up's underscore spellings), so
there is one implementation of training from the command line.
"""

import sys

from sweeper.cli import app

if __name__ == "__main__":
    app(["train", *sys.argv[1:]], prog_name="run.py")
