"""Bad inventories: every issue has the exact file:line:column, field path and message."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.inventory import InventoryError, load_inventory

CaseWriter = Callable[[str], Path]
IssueLister = Callable[[Path], list[str]]

JOB_HEADER = """\
apiVersion: kubeferry.io/v1alpha1
kind: ReplicationJob
metadata:
  name: web
spec:
  replicationSliceName: s12
"""
"""A job document whose spec continues at line 7 (column 3)."""

CLUSTER_HEADER = (
    "apiVersion: kubeferry.io/v1alpha1\nkind: Cluster\nmetadata:\n  name: a\nspec:\n"
    "  context: a\n  role: worker\n"
)
"""A worker Cluster document whose spec continues at line 8 (column 3)."""

REPO_HEADER = """\
apiVersion: kubeferry.io/v1alpha1
kind: ReplicationRepository
metadata:
  name: store
spec:
"""
"""A repository document whose spec continues at line 6 (column 3)."""

CASES: list[tuple[str, str, list[str]]] = [
    # --- YAML syntax and structure ---------------------------------------------------------
    (
        "yaml-bad-indentation",
        "apiVersion: kubeferry.io/v1alpha1\nkind: Cluster\nmetadata:\n  name: a\n spec: {}\n",
        [
            (
                "case.yaml:5:2: YAML syntax error: expected <block end>, but found '<block mapping "
                "start>' (while parsing a block mapping at line 1, column 1)"
            ),
        ],
    ),
    (
        "yaml-tab",
        "apiVersion: kubeferry.io/v1alpha1\nkind:\tCluster\n",
        [
            (
                "case.yaml:2:6: YAML syntax error: found character '\\t' that cannot start any token "
                "(while scanning for the next token)"
            ),
        ],
    ),
    (
        "yaml-unclosed-flow-mapping",
        "apiVersion: kubeferry.io/v1alpha1\nkind: Cluster\nmetadata: {name: a\nspec: {}\n",
        [
            (
                "case.yaml:4:5: YAML syntax error: expected ',' or '}', but got ':' (while parsing a "
                "flow mapping at line 3, column 11)"
            ),
        ],
    ),
    (
        "yaml-undefined-alias",
        "apiVersion: kubeferry.io/v1alpha1\nkind: *nope\n",
        [
            "case.yaml:2:7: YAML syntax error: found undefined alias 'nope'",
        ],
    ),
    (
        "yaml-unsupported-tag",
        JOB_HEADER + "  namespace: !secret demo\n",
        [
            "case.yaml:7:14: ReplicationJob/web.spec.namespace: unsupported YAML tag !secret",
        ],
    ),
    (
        "yaml-invalid-timestamp",
        JOB_HEADER + "  namespace: 2001-13-45\n",
        [
            (
                "case.yaml:7:14: ReplicationJob/web.spec.namespace: invalid value for YAML tag "
                "!!timestamp"
            ),
        ],
    ),
    (
        "yaml-empty-int",  # PyYAML's int constructor indexes the empty string (IndexError)
        JOB_HEADER + "  namespace: !!int ''\n",
        [
            "case.yaml:7:14: ReplicationJob/web.spec.namespace: invalid value for YAML tag !!int",
        ],
    ),
    (
        "yaml-duplicate-key",
        JOB_HEADER + "  namespace: demo\n  namespace: other\n",
        [
            "case.yaml:8:3: ReplicationJob/web.spec.namespace: duplicate key 'namespace'",
        ],
    ),
    (
        "document-not-a-mapping",
        "- apiVersion: kubeferry.io/v1alpha1\n- kind: Cluster\n",
        [
            (
                "case.yaml:1:1: document/#1: expected a mapping with apiVersion, kind, metadata and "
                "spec"
            ),
        ],
    ),
    # --- envelope: apiVersion, kind, metadata ----------------------------------------------
    (
        "unknown-kind",
        "apiVersion: kubeferry.io/v1alpha1\nkind: Clustr\nmetadata: {name: a}\nspec: {}\n",
        [
            (
                "case.yaml:2:7: Clustr/a.kind: unknown kind 'Clustr'; expected one of Cluster, "
                "ReplicationRepository, ReplicationSlice, ReplicationJob, ApplicationSlice"
            ),
        ],
    ),
    (
        "missing-kind",
        "apiVersion: kubeferry.io/v1alpha1\nmetadata: {name: a}\nspec: {}\n",
        [
            (
                "case.yaml:1:1: document/a.kind: required field is missing; expected one of Cluster, "
                "ReplicationRepository, ReplicationSlice, ReplicationJob, ApplicationSlice"
            ),
        ],
    ),
    (
        "wrong-api-version",
        "apiVersion: v1\nkind: Cluster\nmetadata: {name: a}\nspec: {context: a, role: worker}\n",
        [
            "case.yaml:1:13: Cluster/a.apiVersion: expected 'kubeferry.io/v1alpha1'",
        ],
    ),
    (
        "missing-api-version",
        "kind: Cluster\nmetadata: {name: a}\nspec: {context: a, role: worker}\n",
        [
            (
                "case.yaml:1:1: Cluster/a.apiVersion: required field is missing; expected "
                "'kubeferry.io/v1alpha1'"
            ),
        ],
    ),
    (
        "missing-metadata-name",
        "apiVersion: kubeferry.io/v1alpha1\nkind: Cluster\nmetadata: {}\n"
        "spec: {context: a, role: worker}\n",
        [
            "case.yaml:3:1: Cluster/#1.metadata.name: required field is missing",
        ],
    ),
    (
        "invalid-metadata-name",
        "apiVersion: kubeferry.io/v1alpha1\nkind: Cluster\nmetadata:\n  name: Web_1\n"
        "spec: {context: a, role: worker}\n",
        [
            (
                "case.yaml:4:9: Cluster/#1.metadata.name: expected a DNS-1123 label (at most 63 "
                "lowercase letters, digits and '-', starting and ending with a letter or digit), got "
                "'Web_1'"
            ),
        ],
    ),
    (
        "unknown-metadata-field",
        "apiVersion: kubeferry.io/v1alpha1\nkind: Cluster\nmetadata:\n  name: a\n"
        "  namespace: default\nspec: {context: a, role: worker}\n",
        [
            (
                "case.yaml:5:3: Cluster/a.metadata.namespace: unknown field 'namespace'; allowed: "
                "name"
            ),
        ],
    ),
    # --- Cluster ---------------------------------------------------------------------------
    (
        "cluster-missing-spec",
        "apiVersion: kubeferry.io/v1alpha1\nkind: Cluster\nmetadata:\n  name: a\n",
        [
            "case.yaml:1:1: Cluster/a.spec: required field is missing",
        ],
    ),
    (
        "cluster-missing-context",
        "apiVersion: kubeferry.io/v1alpha1\nkind: Cluster\nmetadata:\n  name: a\nspec:\n"
        "  role: worker\n",
        [
            "case.yaml:5:1: Cluster/a.spec.context: required field is missing",
        ],
    ),
    (
        "cluster-bad-role",
        "apiVersion: kubeferry.io/v1alpha1\nkind: Cluster\nmetadata:\n  name: a\nspec:\n"
        "  context: a\n  role: master\n",
        [
            "case.yaml:7:9: Cluster/a.spec.role: expected one of 'controller' or 'worker'",
        ],
    ),
    (
        "cluster-protected-quoted-string",
        "apiVersion: kubeferry.io/v1alpha1\nkind: Cluster\nmetadata:\n  name: a\nspec:\n"
        "  context: a\n  role: worker\n  protected: 'yes'\n",
        [
            (
                "case.yaml:8:14: Cluster/a.spec.protected: expected a boolean (true or false), got a "
                "string"
            ),
        ],
    ),
    (
        "cluster-unknown-field",
        "apiVersion: kubeferry.io/v1alpha1\nkind: Cluster\nmetadata:\n  name: a\nspec:\n"
        "  context: a\n  role: worker\n  server: https://10.0.0.1\n",
        [
            (
                "case.yaml:8:3: Cluster/a.spec.server: unknown field 'server'; allowed: kubeconfig, "
                "context, role, protected, volumeMover"
            ),
        ],
    ),
    # --- Cluster.spec.volumeMover ------------------------------------------------------------
    (
        "volume-mover-unknown-type",
        CLUSTER_HEADER + "  volumeMover: {type: hostpath}\n",
        ["case.yaml:8:23: Cluster/a.spec.volumeMover.type: expected one of 'hostPath' or 'job'"],
    ),
    (
        "volume-mover-type-missing",
        CLUSTER_HEADER + "  volumeMover:\n    image: kubeferry:dev\n",
        ["case.yaml:8:3: Cluster/a.spec.volumeMover.type: required field is missing"],
    ),
    (
        "volume-mover-bad-timeout",
        CLUSTER_HEADER + "  volumeMover: {type: job, timeout: 30 minutes}\n",
        [
            (
                "case.yaml:8:37: Cluster/a.spec.volumeMover.timeout: expected a positive duration "
                "such as '720h', '30d' or '1d12h' (units s, m, h, d, w; at most 100 years)"
            ),
        ],
    ),
    (
        "volume-mover-empty-image",
        CLUSTER_HEADER + "  volumeMover: {type: job, image: ''}\n",
        ["case.yaml:8:35: Cluster/a.spec.volumeMover.image: expected a non-empty string"],
    ),
    (
        "volume-mover-bad-pull-policy",
        CLUSTER_HEADER + "  volumeMover: {type: job, imagePullPolicy: always}\n",
        [
            (
                "case.yaml:8:45: Cluster/a.spec.volumeMover.imagePullPolicy: expected one of "
                "'Always', 'IfNotPresent' or 'Never'"
            ),
        ],
    ),
    (
        "volume-mover-unknown-field",
        CLUSTER_HEADER + "  volumeMover: {type: job, nodeSelector: {disk: ssd}}\n",
        [
            (
                "case.yaml:8:28: Cluster/a.spec.volumeMover.nodeSelector: unknown field "
                "'nodeSelector'; allowed: type, image, imagePullPolicy, timeout, "
                "serviceAccountName, tolerations, resources"
            ),
        ],
    ),
    (
        "volume-mover-resources-bad-cpu",
        CLUSTER_HEADER + "  volumeMover:\n    type: job\n    resources: {limits: {cpu: 1Gi}}\n",
        [
            (
                "case.yaml:10:31: Cluster/a.spec.volumeMover.resources.limits.cpu: expected a "
                "positive CPU quantity such as '500m', '1' or '1.5', got '1Gi'"
            ),
        ],
    ),
    (
        "volume-mover-resources-request-over-limit",
        CLUSTER_HEADER
        + "  volumeMover:\n    type: job\n    resources:\n"
        + "      requests: {memory: 2Gi}\n      limits: {memory: 1Gi}\n",
        [
            (
                "case.yaml:11:26: Cluster/a.spec.volumeMover.resources.requests.memory: request "
                "2Gi exceeds the limit 1Gi: lower it or raise limits.memory"
            ),
        ],
    ),
    (
        "volume-mover-resources-cpu-request-over-limit",
        CLUSTER_HEADER
        + "  volumeMover:\n    type: job\n    resources:\n"
        + "      requests: {cpu: 1.5}\n      limits: {cpu: 1000m}\n",
        [
            (
                "case.yaml:11:23: Cluster/a.spec.volumeMover.resources.requests.cpu: request "
                "1.5 exceeds the limit 1000m: lower it or raise limits.cpu"
            ),
        ],
    ),
    (
        "volume-mover-resources-on-hostpath",
        CLUSTER_HEADER
        + "  volumeMover:\n    type: hostPath\n    resources: {limits: {cpu: '1'}}\n",
        [
            (
                "case.yaml:10:5: Cluster/a.spec.volumeMover.resources: resources is a setting "
                "of type job (type is hostPath)"
            ),
        ],
    ),
    (
        "volume-mover-job-setting-on-hostpath",
        CLUSTER_HEADER + "  volumeMover:\n    type: hostPath\n    timeout: 30m\n",
        [
            (
                "case.yaml:10:14: Cluster/a.spec.volumeMover.timeout: timeout is a setting of "
                "type job (type is hostPath)"
            ),
        ],
    ),
    (
        "volume-mover-toleration-exists-with-value",
        CLUSTER_HEADER
        + "  volumeMover:\n    type: job\n    tolerations:\n"
        + "      - {key: disk, operator: Exists, value: ssd}\n",
        [
            (
                "case.yaml:11:46: Cluster/a.spec.volumeMover.tolerations[0].value: value must be "
                "empty with operator Exists"
            ),
        ],
    ),
    (
        "volume-mover-toleration-equal-without-key",
        CLUSTER_HEADER + "  volumeMover:\n    type: job\n    tolerations:\n      - {value: ssd}\n",
        [
            (
                "case.yaml:11:9: Cluster/a.spec.volumeMover.tolerations[0]: key is required with "
                "operator Equal (or use operator Exists)"
            ),
        ],
    ),
    (
        "volume-mover-toleration-seconds-without-noexecute",
        CLUSTER_HEADER
        + "  volumeMover:\n    type: job\n    tolerations:\n"
        + "      - {key: a, effect: NoSchedule, tolerationSeconds: 60}\n",
        [
            (
                "case.yaml:11:57: Cluster/a.spec.volumeMover.tolerations[0].tolerationSeconds: "
                "tolerationSeconds needs effect NoExecute"
            ),
        ],
    ),
    (
        "cluster-kubeconfig-unset-variable",
        "apiVersion: kubeferry.io/v1alpha1\nkind: Cluster\nmetadata:\n  name: a\nspec:\n"
        "  kubeconfig: ${KUBEFERRY_TEST_UNSET}/config\n  context: a\n  role: worker\n",
        [
            (
                "case.yaml:6:15: Cluster/a.spec.kubeconfig: environment variable "
                "KUBEFERRY_TEST_UNSET is not set (used in this path)"
            ),
        ],
    ),
    (
        "cluster-inline-token",
        "apiVersion: kubeferry.io/v1alpha1\nkind: Cluster\nmetadata:\n  name: a\nspec:\n"
        "  context: a\n  role: worker\n  token: eyJhbGciOiJSUzI1NiJ9.TOKENVALUE\n",
        [
            (
                "case.yaml:8:3: Cluster/a.spec.token: inline secret 'token' is not allowed (value "
                "not shown); cluster credentials belong in the kubeconfig"
            ),
        ],
    ),
    # --- ReplicationRepository -------------------------------------------------------------
    (
        "repository-neither-storage",
        REPO_HEADER + "  encryption: {passphraseFrom: {env: {var: PASS}}}\n",
        [
            (
                "case.yaml:5:1: ReplicationRepository/store.spec: expected exactly one of filesystem, "
                "s3 or hostedIn, got none"
            ),
        ],
    ),
    (
        "repository-both-storages",
        REPO_HEADER + "  filesystem: {path: /srv}\n  s3: {bucket: backups}\n",
        [
            (
                "case.yaml:7:3: ReplicationRepository/store.spec.s3: expected exactly one of "
                "filesystem, s3 or hostedIn, got filesystem and s3"
            ),
        ],
    ),
    (
        "repository-inline-secret-access-key",
        REPO_HEADER + "  s3:\n    bucket: backups\n    secretAccessKey: wJalrXUtnFEMI/K7MDENG\n",
        [
            (
                "case.yaml:8:5: ReplicationRepository/store.spec.s3.secretAccessKey: inline secret "
                "'secretAccessKey' is not allowed (value not shown); reference it with "
                "credentialsFrom (env, file or secretRef)"
            ),
        ],
    ),
    (
        "repository-inline-password-in-credentials",
        REPO_HEADER + "  s3: {bucket: backups}\n  credentialsFrom:\n"
        "    env: {accessKeyIdVar: AK, secretAccessKeyVar: SK}\n    password: hunter2hunter2\n",
        [
            (
                "case.yaml:9:5: ReplicationRepository/store.spec.credentialsFrom.password: inline "
                "secret 'password' is not allowed (value not shown); reference it with "
                "credentialsFrom (env, file or secretRef)"
            ),
        ],
    ),
    (
        "repository-inline-passphrase",
        REPO_HEADER + "  filesystem: {path: /srv}\n  encryption:\n    passphrase: correct-horse\n",
        [
            (
                "case.yaml:7:3: ReplicationRepository/store.spec.encryption.passphraseFrom: required "
                "field is missing"
            ),
            (
                "case.yaml:8:5: ReplicationRepository/store.spec.encryption.passphrase: inline "
                "secret 'passphrase' is not allowed (value not shown); reference it with "
                "encryption.passphraseFrom (env, file or secretRef)"
            ),
        ],
    ),
    (
        "repository-two-credential-sources",
        REPO_HEADER + "  s3: {bucket: backups}\n  credentialsFrom:\n"
        "    env: {accessKeyIdVar: AK, secretAccessKeyVar: SK}\n    file: {path: creds}\n",
        [
            (
                "case.yaml:9:5: ReplicationRepository/store.spec.credentialsFrom.file: expected "
                "exactly one of env, file or secretRef, got env and file"
            ),
        ],
    ),
    (
        "repository-credentials-for-filesystem",
        REPO_HEADER + "  filesystem: {path: /srv}\n  credentialsFrom:\n    file: {path: creds}\n",
        [
            (
                "case.yaml:7:3: ReplicationRepository/store.spec.credentialsFrom: credentialsFrom "
                "applies only to an s3 repository"
            ),
        ],
    ),
    (
        "repository-endpoint-not-url",
        REPO_HEADER + "  s3:\n    bucket: backups\n    endpoint: minio:9000\n",
        [
            (
                "case.yaml:8:15: ReplicationRepository/store.spec.s3.endpoint: expected an http:// "
                "or https:// URL"
            ),
        ],
    ),
    (
        "repository-secret-ref-unknown-cluster",
        REPO_HEADER + "  s3: {bucket: backups}\n  credentialsFrom:\n"
        "    secretRef: {cluster: vault, namespace: kube-system, name: s3}\n",
        [
            (
                "case.yaml:8:26: ReplicationRepository/store.spec.credentialsFrom.secretRef.cluster: "
                "unknown Cluster 'vault' (declared: controller, worker-1, worker-2)"
            ),
        ],
    ),
    # --- ReplicationSlice ------------------------------------------------------------------
    (
        "slice-unknown-cluster",
        "apiVersion: kubeferry.io/v1alpha1\nkind: ReplicationSlice\nmetadata:\n  name: s\nspec:\n"
        "  sourceCluster: worker-1\n  destinationCluster: worker-9\n  repository: repo\n",
        [
            (
                "case.yaml:7:23: ReplicationSlice/s.spec.destinationCluster: unknown Cluster "
                "'worker-9' (declared: controller, worker-1, worker-2)"
            ),
        ],
    ),
    (
        "slice-unknown-repository",
        "apiVersion: kubeferry.io/v1alpha1\nkind: ReplicationSlice\nmetadata:\n  name: s\nspec:\n"
        "  sourceCluster: worker-1\n  destinationCluster: worker-2\n  repository: nas\n",
        [
            (
                "case.yaml:8:15: ReplicationSlice/s.spec.repository: unknown ReplicationRepository "
                "'nas' (declared: repo)"
            ),
        ],
    ),
    # --- ReplicationJob --------------------------------------------------------------------
    (
        "job-unknown-slice",
        JOB_HEADER.replace("s12", "s99") + "  namespace: demo\n",
        [
            (
                "case.yaml:6:25: ReplicationJob/web.spec.replicationSliceName: unknown "
                "ReplicationSlice 's99' (declared: backup, s12)"
            ),
        ],
    ),
    (
        "job-missing-namespace",
        JOB_HEADER,
        [
            "case.yaml:5:1: ReplicationJob/web.spec.namespace: required field is missing",
        ],
    ),
    (
        "job-namespace-not-dns-label",
        JOB_HEADER + "  namespace: Demo_App\n",
        [
            (
                "case.yaml:7:14: ReplicationJob/web.spec.namespace: expected a DNS-1123 label (at "
                "most 63 lowercase letters, digits and '-', starting and ending with a letter or "
                "digit), got 'Demo_App'"
            ),
        ],
    ),
    (
        "job-keep-last-zero",
        JOB_HEADER + "  namespace: demo\n  retention:\n    keepLast: 0\n",
        [
            "case.yaml:9:15: ReplicationJob/web.spec.retention.keepLast: expected an integer >= 1",
        ],
    ),
    (
        "job-keep-last-not-integer",
        JOB_HEADER + "  namespace: demo\n  retention:\n    keepLast: five\n",
        [
            (
                "case.yaml:9:15: ReplicationJob/web.spec.retention.keepLast: expected an integer, "
                "got a string"
            ),
        ],
    ),
    (
        "job-retention-empty",
        JOB_HEADER + "  namespace: demo\n  retention: {}\n",
        [
            (
                "case.yaml:8:3: ReplicationJob/web.spec.retention: expected at least one of "
                "keepLast, keepDaily or ttl"
            ),
        ],
    ),
    (
        "job-bad-ttl",
        JOB_HEADER + "  namespace: demo\n  retention:\n    ttl: 30 days\n",
        [
            (
                "case.yaml:9:10: ReplicationJob/web.spec.retention.ttl: expected a positive duration "
                "such as '720h', '30d' or '1d12h' (units s, m, h, d, w; at most 100 years)"
            ),
        ],
    ),
    (
        "job-bad-cron",
        JOB_HEADER + "  namespace: demo\n  backupFrequency: every night\n",
        [
            (
                "case.yaml:8:20: ReplicationJob/web.spec.backupFrequency: expected a cron expression "
                "with 5 fields (minute hour day-of-month month day-of-week, e.g. '0 2 * * *') or "
                "@hourly/@daily/@weekly/@monthly/@yearly, got 'every night'"
            ),
        ],
    ),
    (
        "job-cron-with-seconds",
        JOB_HEADER + "  namespace: demo\n  restoreFrequency: '0 0 2 * * *'\n",
        [
            (
                "case.yaml:8:21: ReplicationJob/web.spec.restoreFrequency: expected a cron "
                "expression with 5 fields (minute hour day-of-month month day-of-week, e.g. '0 2 * * "
                "*') or @hourly/@daily/@weekly/@monthly/@yearly, got '0 0 2 * * *'"
            ),
        ],
    ),
    (
        "job-bad-existing-resource-policy",
        JOB_HEADER + "  namespace: demo\n  existingResourcePolicy: replace\n",
        [
            (
                "case.yaml:8:27: ReplicationJob/web.spec.existingResourcePolicy: expected one of "
                "'none', 'update' or 'recreate'"
            ),
        ],
    ),
    (
        "job-bad-pre-check-flag",
        JOB_HEADER + "  namespace: demo\n  preCheckFlag: skip\n",
        [
            (
                "case.yaml:8:17: ReplicationJob/web.spec.preCheckFlag: expected one of "
                "'ignorePrechecks' or 'stopOnPrecheck'"
            ),
        ],
    ),
    (
        "job-k8s-objects-and-pv-data-only",
        JOB_HEADER + "  namespace: demo\n  k8sObjectsOnly: true\n  pvDataOnly: true\n",
        [
            (
                "case.yaml:9:15: ReplicationJob/web.spec.pvDataOnly: k8sObjectsOnly and pvDataOnly "
                "cannot both be true"
            ),
        ],
    ),
    (
        "job-label-selector-string",
        JOB_HEADER + "  namespace: demo\n  labelSelector: app=web\n",
        [
            (
                "case.yaml:8:18: ReplicationJob/web.spec.labelSelector: expected a mapping, got a "
                "string"
            ),
        ],
    ),
    (
        "job-bad-resource-name",
        JOB_HEADER + "  namespace: demo\n  resourcesToInclude:\n    - deployments\n    - Pods\n",
        [
            (
                "case.yaml:10:7: ReplicationJob/web.spec.resourcesToInclude[1]: expected a resource "
                "name like 'deployments' or 'deployments.apps' ('*' wildcards allowed), got 'Pods'"
            ),
        ],
    ),
    (
        "job-storage-class-mapping-not-string",
        JOB_HEADER + "  namespace: demo\n  storageClassMapping:\n    fast: 42\n",
        [
            (
                "case.yaml:9:11: ReplicationJob/web.spec.storageClassMapping.fast: expected a "
                "string, got an integer"
            ),
        ],
    ),
    (
        "job-unknown-application-slice",
        JOB_HEADER + "  namespace: demo\n  onboard: {applicationSlice: shop}\n",
        [
            (
                "case.yaml:8:31: ReplicationJob/web.spec.onboard.applicationSlice: unknown "
                "ApplicationSlice 'shop' (no ApplicationSlice is declared)"
            ),
        ],
    ),
    (
        "jobs-same-destination-namespace",
        JOB_HEADER
        + "  namespace: demo\n---\n"
        + JOB_HEADER.replace("web", "api")
        + "  namespace: api\n  targetNamespace: demo\n",
        [
            (
                "case.yaml:16:20: ReplicationJob/api.spec.targetNamespace: ReplicationJob/web "
                "already writes namespace 'demo' on cluster 'worker-2'"
            ),
        ],
    ),
    (
        "job-collects-every-error",
        JOB_HEADER + "  namespace: demo\n  deletionPolicy: Purge\n  retention:\n    keepDaily: -1\n"
        "  colour: blue\n",
        [
            (
                "case.yaml:8:19: ReplicationJob/web.spec.deletionPolicy: expected one of 'Retain' or "
                "'Delete'"
            ),
            (
                "case.yaml:10:16: ReplicationJob/web.spec.retention.keepDaily: expected an integer "
                ">= 1"
            ),
            (
                "case.yaml:11:3: ReplicationJob/web.spec.colour: unknown field 'colour'; allowed: "
                "replicationSliceName, namespace, targetNamespace, resourcesToInclude, "
                "resourcesToExclude, labelSelector, k8sObjectsOnly, pvDataOnly, quiesce, "
                "storageClassMapping, existingResourcePolicy, backupFrequency, restoreFrequency, "
                "retention, drillFrequency, notify, preCheckFlag, deletionPolicy, onboard"
            ),
        ],
    ),
    # --- duplicates and ApplicationSlice ---------------------------------------------------
    (
        "duplicate-cluster-name",
        "apiVersion: kubeferry.io/v1alpha1\nkind: Cluster\nmetadata:\n  name: worker-1\n"
        "spec: {context: other, role: worker}\n",
        [
            (
                "case.yaml:4:9: Cluster/worker-1.metadata.name: duplicate Cluster name (first at "
                "00-base.yaml:8:18)"
            ),
        ],
    ),
    (
        "application-slice-unknown-clusters",
        "apiVersion: kubeferry.io/v1alpha1\nkind: ApplicationSlice\nmetadata:\n  name: shop\n"
        "spec:\n  controllerCluster: hub\n  project: retail\n  clusters:\n    - worker-1\n"
        "    - worker-7\n",
        [
            (
                "case.yaml:6:22: ApplicationSlice/shop.spec.controllerCluster: unknown Cluster 'hub' "
                "(declared: controller, worker-1, worker-2)"
            ),
            (
                "case.yaml:10:7: ApplicationSlice/shop.spec.clusters[1]: unknown Cluster 'worker-7' "
                "(declared: controller, worker-1, worker-2)"
            ),
        ],
    ),
    (
        "application-slice-no-clusters",
        "apiVersion: kubeferry.io/v1alpha1\nkind: ApplicationSlice\nmetadata:\n  name: shop\n"
        "spec:\n  controllerCluster: controller\n  project: retail\n  clusters: []\n",
        [
            "case.yaml:8:3: ApplicationSlice/shop.spec.clusters: expected at least 1 item(s)",
        ],
    ),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_inventory_reports_exact_issues(
    inventory_dir: CaseWriter, issues_of: IssueLister, text: str, expected: list[str]
) -> None:
    assert issues_of(inventory_dir(text)) == expected


SECRET_VALUES = {
    "cluster-inline-token": "eyJhbGciOiJSUzI1NiJ9.TOKENVALUE",
    "repository-inline-secret-access-key": "wJalrXUtnFEMI/K7MDENG",
    "repository-inline-password-in-credentials": "hunter2hunter2",
    "repository-inline-passphrase": "correct-horse",
}


@pytest.mark.parametrize(("case_id", "secret"), SECRET_VALUES.items())
def test_inline_secret_value_is_never_shown(
    inventory_dir: CaseWriter, issues_of: IssueLister, case_id: str, secret: str
) -> None:
    text = next(case[1] for case in CASES if case[0] == case_id)
    assert secret in text  # the case really declares it inline
    lines = issues_of(inventory_dir(text))
    assert any("inline secret" in line for line in lines)
    assert not any(secret in line for line in lines)
    with pytest.raises(InventoryError) as caught:  # the one-line summary too
        load_inventory(inventory_dir(text))
    assert secret not in str(caught.value)


def test_there_are_at_least_thirty_bad_cases() -> None:
    assert len(CASES) >= 30
    assert len({case[0] for case in CASES}) == len(CASES)
