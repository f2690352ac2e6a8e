import sys

from mnist_train.cli import main

sys.exit(main())
