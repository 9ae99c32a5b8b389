import sys

from kgalign.cli.main import main

sys.exit(main())
