pytest_plugins = ["airflow_provider_gcp_wif.testing.pytest_plugin"]
