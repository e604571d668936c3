"""`kubeferry validate` and `kubeferry schema`: exit codes, one line per error, no traceback."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reconciler.cli import app, main
from reconciler.cli._inventory import schema_text
from reconciler.inventory import json_schema

CaseWriter = Callable[[str], Path]
ISSUE_LINE = re.compile(r"^.+:\d+:\d+: \S+: .+$")

BROKEN_JOB = """\
apiVersion: kubeferry.io/v1alpha1
kind: ReplicationJob
metadata: {name: web}
spec:
  replicationSliceName: s12
  namespace: web
  retention: {keepLast: 0}
  backupFrequency: often
---
apiVersion: kubeferry.io/v1alpha1
kind: ReplicationSlice
metadata: {name: s2}
spec: {sourceCluster: worker-1, destinationCluster: nowhere, repository: repo}
"""


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_validate_ok(runner: CliRunner, examples: Path) -> None:
    result = runner.invoke(app, ["validate", "-f", str(examples / "demo" / "kubeferry.yaml")])
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        "inventory OK: 3 clusters, 1 repository, 2 slices, 2 jobs, 0 application slices\n"
    )


@pytest.mark.parametrize("example", ["s3-minio.yaml", "multi-slice.yaml"])
def test_validate_ok_for_every_example(runner: CliRunner, examples: Path, example: str) -> None:
    result = runner.invoke(app, ["validate", "--file", str(examples / example)])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("inventory OK: ")


def test_validate_prints_every_error_on_its_own_line(
    runner: CliRunner, inventory_dir: CaseWriter
) -> None:
    directory = inventory_dir(BROKEN_JOB)
    result = runner.invoke(app, ["validate", "-f", str(directory)])
    assert result.exit_code == 1
    assert result.stdout == ""
    case = directory / "case.yaml"
    assert result.stderr.splitlines() == [
        f"{case}:7:25: ReplicationJob/web.spec.retention.keepLast: expected an integer >= 1",
        f"{case}:8:20: ReplicationJob/web.spec.backupFrequency: expected a cron expression with "
        "5 fields (minute hour day-of-month month day-of-week, e.g. '0 2 * * *') or "
        "@hourly/@daily/@weekly/@monthly/@yearly, got 'often'",
        f"{case}:13:53: ReplicationSlice/s2.spec.destinationCluster: unknown Cluster 'nowhere' "
        "(declared: controller, worker-1, worker-2)",
    ]
    assert all(ISSUE_LINE.match(line) for line in result.stderr.splitlines())
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing", "inventory not found (give -f PATH or set KUBEFERRY_INVENTORY)"),
        ("empty-directory", "no *.yaml or *.yml files in this directory"),
        ("syntax", "YAML syntax error"),
        ("binary", "not valid UTF-8 text"),
    ],
)
def test_validate_bad_files_without_traceback(
    runner: CliRunner, tmp_path: Path, setup: str, message: str
) -> None:
    path = tmp_path / "kubeferry.yaml"
    if setup == "empty-directory":
        path = tmp_path / "inventory"
        path.mkdir()
    elif setup == "syntax":
        path.write_text("kind: [Cluster\n")
    elif setup == "binary":
        path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    result = runner.invoke(app, ["validate", "-f", str(path)])
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(str(path))
    assert message in lines[0]
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output


def test_validate_unreadable_file(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "kubeferry.yaml"
    path.write_text("kind: Cluster\n")

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "open", refuse)
    result = runner.invoke(app, ["validate", "-f", str(path)])
    assert result.exit_code == 1
    assert result.stderr == f"{path}: cannot read: Permission denied\n"


def test_validate_default_path_resolution(
    runner: CliRunner, tmp_path: Path, examples: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("KUBEFERRY_INVENTORY", raising=False)
    result = runner.invoke(app, ["validate"])
    assert result.exit_code == 1
    assert (
        result.stderr
        == "kubeferry.yaml: inventory not found (give -f PATH or set KUBEFERRY_INVENTORY)\n"
    )

    (tmp_path / "kubeferry.yaml").write_text((examples / "s3-minio.yaml").read_text())
    result = runner.invoke(app, ["validate"])
    assert result.exit_code == 0
    assert result.stdout.startswith("inventory OK: 2 clusters")

    monkeypatch.setenv("KUBEFERRY_INVENTORY", str(examples / "multi-slice.yaml"))
    result = runner.invoke(app, ["validate"])
    assert result.exit_code == 0
    assert result.stdout.startswith("inventory OK: 4 clusters")


def test_main_returns_exit_codes(
    examples: Path, inventory_dir: CaseWriter, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate", "-f", str(examples / "demo" / "kubeferry.yaml")]) == 0
    assert main(["validate", "-f", str(inventory_dir(BROKEN_JOB))]) == 1
    captured = capsys.readouterr()
    assert captured.out.startswith("inventory OK")
    assert len(captured.err.splitlines()) == 3


def test_validate_in_a_real_process(inventory_dir: CaseWriter) -> None:
    directory = inventory_dir(BROKEN_JOB + "---\n- not: [a mapping\n")
    result = subprocess.run(
        [sys.executable, "-m", "reconciler", "validate", "-f", str(directory)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    # the syntax error stops that file: the documents before it are still checked,
    # cross-references are not (they would be noise)
    assert len(lines) == 3
    assert lines[-1].startswith(f"{directory / 'case.yaml'}:16:1: ")
    assert "YAML syntax error" in lines[-1]


# --- schema -------------------------------------------------------------------------------


def test_schema_to_stdout(runner: CliRunner) -> None:
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0
    assert json.loads(result.stdout) == json_schema()
    assert result.stdout == schema_text()


def test_schema_to_file(runner: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "schema.json"
    result = runner.invoke(app, ["schema", "--out", str(out)])
    assert result.exit_code == 0
    assert out.read_text() == schema_text()
    assert result.stdout == ""


def test_schema_unwritable_destination_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "missing-directory" / "schema.json"
    assert main(["schema", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.splitlines() == [f"kubeferry: error: cannot write {out}: No such file or directory"]


def test_committed_schema_is_current(examples: Path) -> None:
    committed = (examples / "kubeferry.schema.json").read_text()
    assert committed == schema_text(), (
        "regenerate: kubeferry schema --out examples/kubeferry.schema.json"
    )


def test_schema_is_a_one_of_keyed_on_kind() -> None:
    schema = json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    kinds = ["Cluster", "ReplicationRepository", "ReplicationSlice", "ReplicationJob",
             "ApplicationSlice"]  # fmt: skip
    assert schema["oneOf"] == [{"$ref": f"#/$defs/{kind}"} for kind in kinds]
    assert schema["discriminator"]["propertyName"] == "kind"
    for kind in kinds:
        definition = schema["$defs"][kind]
        assert definition["properties"]["kind"]["const"] == kind
        assert definition["properties"]["apiVersion"]["const"] == "kubeferry.io/v1alpha1"
        assert definition["additionalProperties"] is False
        assert set(definition["required"]) == {"apiVersion", "kind", "metadata", "spec"}
    job = schema["$defs"]["ReplicationJobSpec"]["properties"]
    assert job["existingResourcePolicy"]["enum"] == ["none", "update", "recreate"]
    assert "k8sObjectsOnly" in job
    assert "pvDataOnly" in job
