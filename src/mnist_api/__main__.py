import sys

from mnist_api.cli import main

sys.exit(main())
