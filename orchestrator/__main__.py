"""``python -m orchestrator`` is ``gcnc``."""

import sys

from orchestrator.cli import main

sys.exit(main())
