"""``python -m airflow_provider_gcp_wif.cli``: the same as the ``gcp-wif`` console script."""

import sys

from airflow_provider_gcp_wif.cli import main

sys.exit(main())
