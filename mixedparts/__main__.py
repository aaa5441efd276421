import sys

from mixedparts.cli import main

sys.exit(main())
