"""Airflow secrets backends that authenticate keylessly (no connection can be looked up from inside one)."""
