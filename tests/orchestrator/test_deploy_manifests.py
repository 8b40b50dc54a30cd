"""The KubeRay example of docs/running.md (deploy/kuberay/), parsed: one image and one token
Secret for every pod, the same volumes at the same paths, Ray's version, no token inside."""

from __future__ import annotations

import re
from pathlib import Path

import ray
import yaml

ROOT = Path(__file__).resolve().parents[2]
KUBERAY = ROOT / "deploy" / "kuberay"


def documents(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((KUBERAY / name).read_text()) if d]


def pods(cluster: dict) -> dict[str, dict]:
    """Each pod template of a RayCluster by group (``head`` and each worker group)."""
    spec = cluster["spec"]
    out = {"head": spec["headGroupSpec"]["template"]["spec"]}
    for group in spec["workerGroupSpecs"]:
        out[group["groupName"]] = group["template"]["spec"]
    return out


def test_every_pod_runs_one_image_with_the_token_secret_and_the_shared_volumes():
    (cluster,) = documents("raycluster.yaml")
    assert cluster["apiVersion"] == "ray.io/v1" and cluster["kind"] == "RayCluster"
    assert cluster["spec"]["rayVersion"] == ray.__version__
    claims = {d["metadata"]["name"]: d for d in documents("storage.yaml")}
    assert all(d["kind"] == "PersistentVolumeClaim" for d in claims.values())
    assert all(d["spec"]["accessModes"] == ["ReadWriteMany"] for d in claims.values())

    templates = pods(cluster)
    assert len(templates) >= 2, "a head and at least one worker group"
    images, secrets, mounts = set(), set(), set()
    for group, pod in templates.items():
        (container,) = pod["containers"]
        images.add(container["image"])
        secrets.update(e["secretRef"]["name"] for e in container["envFrom"])
        assert not [e for e in container.get("env", []) if e["name"].startswith("RAY_AUTH")]
        volumes = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"]}
        assert set(volumes.values()) == set(claims), group
        mounts.add(tuple(sorted((volumes[m["name"]], m["mountPath"])
                                for m in container["volumeMounts"])))  # fmt: skip
    assert len(images) == 1 and len(secrets) == 1 and len(mounts) == 1, (images, secrets, mounts)

    # The Secret the pods read is the one the page (and the manifest's header) tells to make.
    (secret,) = secrets
    made = f"kubectl create secret generic {secret} --from-literal=RAY_AUTH_MODE=token"
    assert made in (ROOT / "docs" / "running.md").read_text()
    assert made in (KUBERAY / "raycluster.yaml").read_text()
    # The image is the Dockerfile's: Ray's own, of the version installed here.
    (image,) = images
    assert f"-t {image} " in (ROOT / "docs" / "running.md").read_text()
    base = re.search(r"^FROM (\S+)", (KUBERAY / "Dockerfile").read_text(), re.M)
    assert base and base.group(1).startswith(f"rayproject/ray:{ray.__version__}-py311")


def test_no_token_is_written_in_the_example():
    for path in KUBERAY.iterdir():
        assert not re.search(r"\b[0-9a-f]{32,}\b", path.read_text()), path
