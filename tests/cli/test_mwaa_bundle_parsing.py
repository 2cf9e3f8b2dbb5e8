"""mwaa-bundle reads pyproject.toml with tomllib and wheel metadata and names with packaging, not regexes."""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

import pytest

from airflow_provider_gcp_wif.cli import mwaa_bundle_command as bundle

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(sys.version_info < (3, 11), reason="tomllib is Python 3.11+")
def test_the_project_name_is_the_project_tables_not_any_name_line():
    text = '[tool.other]\nname = "airflow-provider-gcp-wif"\n\n[project]\nname = "something-else"\n'
    assert bundle._project_name(text) == "something-else"
    assert bundle._project_name("[project\nname = 'x'") is None  # not TOML
    assert bundle._project_name((ROOT / "pyproject.toml").read_text()) == "airflow-provider-gcp-wif"


def test_python_3_10_without_tomllib_still_finds_this_project(monkeypatch):
    monkeypatch.setattr(bundle, "tomllib", None)
    assert bundle._project_name((ROOT / "pyproject.toml").read_text()) == "airflow-provider-gcp-wif"
    assert bundle._project_root() == ROOT


def test_wheel_metadata_reads_the_top_level_dist_info_with_packaging(tmp_path):
    wheel = tmp_path / "Airflow_Provider.GCP_WIF-1.2.3-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("vendored/other-9.dist-info/METADATA", "Metadata-Version: 2.1\nName: other\nVersion: 9\n")
        archive.writestr("Airflow_Provider.GCP_WIF-1.2.3.dist-info/METADATA",
                         "Metadata-Version: 2.1\nName: Airflow_Provider.GCP_WIF\nVersion: 1.2.3\n"
                         "Summary: a summary\n folded onto a second line\n\nbody\n")
    name, version = bundle.wheel_metadata(wheel)
    assert (name, version) == ("Airflow_Provider.GCP_WIF", "1.2.3")
    assert bundle._normalise(name) == "airflow-provider-gcp-wif"
