"""Consistency checks of infra/ that no schema expresses, run by infra/check.sh.

Schemas say a file is well formed; these say it is Stead's: every role's Deployment has its
probes, limits, non-root user and secrets from the Secret; every disruption budget and Service
selects real pods; the compose stack's dependencies, secrets and mounts exist; the dashboard's
panels use the provisioned datasource; the collector's pipelines use defined components; the
built image runs as a numeric non-root user with its health check and labels.

    python check_files.py {kustomize-files|k8s|compose|grafana|otel|image} PATH [PATH]

Prints each problem and exits 1 if there is any.
"""

import json
import pathlib
import sys

import yaml

problems = []


def problem(text):
    problems.append(text)
    print(f"  - {text}", file=sys.stderr)


def load_all(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def kustomize_files(k8s_dir):
    """The manifest files the kustomizations list (not the patches): for validation without a renderer."""
    root = pathlib.Path(k8s_dir)
    for kustomization in sorted(root.rglob("kustomization.yaml")):
        for entry in yaml.safe_load(kustomization.read_text()).get("resources", []):
            path = kustomization.parent / entry
            if path.is_file():
                print(path)


def selects(selector, labels):
    return all(labels.get(k) == v for k, v in (selector or {}).get("matchLabels", {}).items())


def check_k8s(k8s_dir, rendered_dir):
    rendered = sorted(pathlib.Path(rendered_dir).glob("*.yaml"))
    if rendered:
        sets = {p.stem: [d for d in load_all(p)] for p in rendered}
    else:
        sets = {"base": [d for p in sorted(pathlib.Path(k8s_dir, "base").glob("*.yaml"))
                         if p.name != "kustomization.yaml" for d in load_all(p)]}
    for name, docs in sets.items():
        kinds = {}
        for d in docs:
            kinds.setdefault(d["kind"], []).append(d)
        deployments = [d for d in kinds.get("Deployment", [])
                       if d["metadata"].get("labels", {}).get("app.kubernetes.io/name") == "stead"]
        roles = {d["spec"]["template"]["metadata"]["labels"].get("app.kubernetes.io/component"): d
                 for d in deployments}
        if set(roles) != {"api", "ingress", "worker"}:
            problem(f"{name}: Deployments for roles {sorted(roles)}, want api, ingress, worker")
        for role, d in roles.items():
            where = f"{name}: Deployment {d['metadata']['name']}"
            pod = d["spec"]["template"]
            spec = pod["spec"]
            if pod["metadata"].get("annotations", {}).get("prometheus.io/scrape") != "true":
                problem(f"{where}: no prometheus.io/scrape annotation")
            if not spec.get("terminationGracePeriodSeconds"):
                problem(f"{where}: no terminationGracePeriodSeconds")
            psc = spec.get("securityContext", {})
            if psc.get("runAsNonRoot") is not True or not psc.get("runAsUser"):
                problem(f"{where}: the pod must run as a numeric non-root user")
            (c,) = [c for c in spec["containers"] if c["name"] == "stead"]
            if c.get("args", [])[:3] != ["serve", "--roles", role]:
                problem(f"{where}: args {c.get('args')} do not run the {role} role")
            if c.get("readinessProbe", {}).get("httpGet", {}).get("path") != "/readyz":
                problem(f"{where}: readiness probe is not GET /readyz")
            if c.get("livenessProbe", {}).get("httpGet", {}).get("path") != "/healthz":
                problem(f"{where}: liveness probe is not GET /healthz")
            res = c.get("resources", {})
            for kind in ("requests", "limits"):
                if not {"cpu", "memory"} <= set(res.get(kind, {})):
                    problem(f"{where}: resources.{kind} needs cpu and memory")
            csc = c.get("securityContext", {})
            if csc.get("allowPrivilegeEscalation") is not False or csc.get("readOnlyRootFilesystem") is not True:
                problem(f"{where}: container must not escalate privileges and must have a read-only root")
            refs = [e.get("secretRef", {}).get("name") for e in c.get("envFrom", [])]
            if "stead-secrets" not in refs:
                problem(f"{where}: secrets do not come from the Secret stead-secrets")
            labels = pod["metadata"]["labels"]
            if not any(selects(p["spec"].get("selector"), labels) for p in kinds.get("PodDisruptionBudget", [])):
                problem(f"{where}: no PodDisruptionBudget selects its pods")
        services = kinds.get("Service", [])
        ingress_labels = roles.get("ingress", {}).get("spec", {}).get("template", {}).get("metadata", {}).get("labels", {})
        api_labels = roles.get("api", {}).get("spec", {}).get("template", {}).get("metadata", {}).get("labels", {})
        if not any(s["spec"].get("type") == "LoadBalancer"
                   and any(p["port"] == 1883 and p.get("protocol", "TCP") == "TCP" for p in s["spec"]["ports"])
                   and selects({"matchLabels": s["spec"]["selector"]}, ingress_labels) for s in services):
            problem(f"{name}: no TCP LoadBalancer Service on 1883 selects the ingress pods")
        if not any(s["spec"].get("type", "ClusterIP") == "ClusterIP"
                   and selects({"matchLabels": s["spec"]["selector"]}, api_labels) for s in services
                   if s["metadata"]["name"].startswith("stead")):
            problem(f"{name}: no ClusterIP Service selects the api pods")
        if not any(c.get("args") == ["migrate"] for j in kinds.get("Job", [])
                   for c in j["spec"]["template"]["spec"]["containers"]):
            problem(f"{name}: no Job runs `stead migrate`")
        for cm in kinds.get("ConfigMap", []):
            for key in cm.get("data", {}):
                if any(s in key for s in ("DATABASE_URL", "REDIS_URL", "SECRET", "PASSWORD")):
                    problem(f"{name}: ConfigMap {cm['metadata']['name']} holds {key}: that belongs in a Secret")
        secrets = {s["metadata"]["name"] for s in kinds.get("Secret", [])}
        if name == "production" and "stead-secrets" in secrets:
            problem("production: must not define stead-secrets (it is created from the secret store)")
        if name == "dev" and "stead-secrets" not in secrets:
            problem("dev: needs the placeholder Secret stead-secrets")


def check_compose(path):
    compose_dir = pathlib.Path(path).parent
    doc = yaml.safe_load(pathlib.Path(path).read_text())
    services = doc["services"]
    gitignore = (compose_dir / ".gitignore").read_text().split() if (compose_dir / ".gitignore").exists() else []
    for name, s in services.items():
        for dep, cond in (s.get("depends_on") or {}).items():
            if dep not in services:
                problem(f"service {name} depends on unknown service {dep}")
            if not isinstance(cond, dict) or "condition" not in cond:
                problem(f"service {name}: depends_on {dep} without a condition")
        for secret in s.get("secrets", []):
            secret = secret if isinstance(secret, str) else secret["source"]
            if secret not in doc.get("secrets", {}):
                problem(f"service {name} uses undefined secret {secret}")
        for env_file in s.get("env_file", []):
            if env_file not in gitignore:
                problem(f"{env_file} (service {name}) holds secrets and is not in .gitignore")
        for key, value in (s.get("environment") or {}).items():
            secretish = any(w in key for w in ("PASSWORD", "SECRET", "DATABASE_URL"))
            if secretish and not key.endswith("_FILE"):
                problem(f"service {name}: {key} is inlined; use an env file or a compose secret")
        for volume in s.get("volumes", []):
            source = volume.split(":")[0] if isinstance(volume, str) else volume.get("source", "")
            if source.startswith((".", "/")) and not (compose_dir / source).exists():
                problem(f"service {name} mounts {source}, which does not exist")
        if s.get("image", "").startswith("${STEAD_IMAGE") and name != "migrate" and "healthcheck" not in s:
            problem(f"Stead service {name} has no healthcheck")
    for name, secret in doc.get("secrets", {}).items():
        file = secret.get("file", "")
        if file and not any(file.startswith(g.rstrip("/")) for g in gitignore):
            problem(f"secret {name}'s file {file} is not in .gitignore")
    roles = [s.get("command", [])[2:3] for s in services.values() if s.get("command", [])[:2] == ["serve", "--roles"]]
    if sorted(r[0] for r in roles) != ["api", "ingress", "ingress", "worker"]:
        problem(f"want two ingress nodes, an api node and a worker; got roles {roles}")
    for wanted in ("postgres", "redis", "otel-collector", "prometheus", "grafana"):
        if wanted not in services:
            problem(f"no {wanted} service")


def check_grafana(grafana_dir):
    root = pathlib.Path(grafana_dir)
    uids = set()
    for f in (root / "provisioning" / "datasources").glob("*.yaml"):
        uids |= {d["uid"] for d in yaml.safe_load(f.read_text())["datasources"]}
    paths = set()
    for f in (root / "provisioning" / "dashboards").glob("*.yaml"):
        paths |= {p["options"]["path"] for p in yaml.safe_load(f.read_text())["providers"]}
    if paths != {"/var/lib/grafana/dashboards"}:
        problem(f"dashboard providers read {paths}; compose.yaml mounts the dashboards at /var/lib/grafana/dashboards")
    for f in sorted((root / "dashboards").glob("*.json")):
        dash = json.loads(f.read_text())
        ids = []

        def walk(panels):
            for p in panels:
                ids.append(p["id"])
                if p["type"] == "row":
                    walk(p.get("panels", []))
                    continue
                if p.get("datasource", {}).get("uid") not in uids:
                    problem(f"{f.name}: panel {p['title']!r} uses datasource {p.get('datasource')}, not a provisioned one {uids}")
                if not p.get("targets") or not all(t.get("expr") for t in p["targets"]):
                    problem(f"{f.name}: panel {p['title']!r} has a target without a query")
        walk(dash["panels"])
        if len(ids) != len(set(ids)):
            problem(f"{f.name}: panel ids are not unique")
        for v in dash.get("templating", {}).get("list", []):
            if v.get("datasource", {}).get("uid") not in uids:
                problem(f"{f.name}: variable {v['name']} uses an unprovisioned datasource")


def check_otel(path):
    doc = yaml.safe_load(pathlib.Path(path).read_text())
    service = doc["service"]
    for ext in service.get("extensions", []):
        if ext not in (doc.get("extensions") or {}):
            problem(f"service uses undefined extension {ext}")
    for name, pipeline in service["pipelines"].items():
        for kind in ("receivers", "processors", "exporters"):
            for component in pipeline.get(kind, []):
                if component not in (doc.get(kind) or {}):
                    problem(f"pipeline {name} uses undefined {kind[:-1]} {component}")
    if "otlp" not in doc.get("receivers", {}):
        problem("no otlp receiver: Stead exports over OTLP")


def check_image(path):
    (image,) = json.loads(pathlib.Path(path).read_text())
    config = image["Config"]
    user = config.get("User", "")
    uid = user.split(":")[0]
    if not uid.isdigit() or int(uid) == 0:
        problem(f"image user {user!r}: want a numeric non-root user")
    # podman reports the health check beside Config, docker inside it.
    health = (image.get("Healthcheck") or config.get("Healthcheck") or {}).get("Test")
    if health != ["CMD", "/stead", "healthcheck"]:
        problem(f"image health check {health}: want the binary's own `stead healthcheck`")
    labels = config.get("Labels") or {}
    for key in ("title", "description", "version", "revision", "created", "licenses"):
        if not labels.get(f"org.opencontainers.image.{key}"):
            problem(f"image has no org.opencontainers.image.{key} label")
    ports = set(config.get("ExposedPorts") or {})
    if not {"8080/tcp", "1883/tcp"} <= ports:
        problem(f"image exposes {sorted(ports)}: want 8080/tcp and 1883/tcp")
    if "/data" not in (config.get("Volumes") or {}):
        problem("image declares no /data volume")
    env = config.get("Env") or []
    for wanted in ("STEAD_HTTP_ADDR=0.0.0.0:8080", "STEAD_MQTT_ADDR=0.0.0.0:1883", "STEAD_DATA_DIR=/data"):
        if wanted not in env:
            problem(f"image environment lacks {wanted}")
    if config.get("Entrypoint") != ["/stead"]:
        problem(f"image entrypoint {config.get('Entrypoint')}: want /stead")
    print(f"image {image['Id'][:12]}: user {user}, health check {' '.join(health or [])}, "
          f"ports {' '.join(sorted(ports))}, {len(labels)} labels")


def main():
    command, args = sys.argv[1], sys.argv[2:]
    {
        "kustomize-files": kustomize_files,
        "k8s": check_k8s,
        "compose": check_compose,
        "grafana": check_grafana,
        "otel": check_otel,
        "image": check_image,
    }[command](*args)
    if problems:
        print(f"{command}: {len(problems)} problem(s)", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
