"""``python -m blobstore``: the same as the ``blobstore`` command."""

import sys

from blobstore.cli.main import main

sys.exit(main())
