#!/usr/bin/env bash
# What of deploy/Containerfile, deploy/compose.yaml and deploy/kubernetes/
# can be checked without a container runtime or a cluster: every YAML file
# parses and has the fields docs/operations.md#containers promises (probes,
# limits, non-root, read-only root, secrets by reference, selectors that
# match), the Containerfile copies files that exist and runs as a non-root
# user, runtime-packages.sh names installed Debian packages for this build's
# binaries, and the image's entrypoint, run on this host against a real
# PostgreSQL, migrates as the owner role and serves as the application role.
# Needs LOGBOOK_TEST_ENV, LOGBOOKD, LOGBOOK_CLI and Debian's python3-yaml
# (deploy/install-deps.sh installs it).
set -uo pipefail

. "$LOGBOOK_TEST_ENV"
. "$(dirname "$0")/lib.sh"
root="$(cd "$(dirname "$0")/../.." && pwd)"
deploy=$root/deploy
begin_test
server_pid=""

# 1. The YAML files.
/usr/bin/python3 - "$deploy" "$LOGBOOKD" <<'PY' || fail "the YAML files"
import os, subprocess, sys, yaml
deploy, logbookd = sys.argv[1], sys.argv[2]
env_names = {w[5:].rstrip(")") for w in subprocess.run([logbookd, "--help"], capture_output=True,
             text=True).stdout.split() if w.startswith("(Env:")}
k = {}
for name in sorted(os.listdir(f"{deploy}/kubernetes")):
    assert name.endswith(".yaml"), name
    doc = yaml.safe_load(open(f"{deploy}/kubernetes/{name}"))
    k[doc["kind"]] = doc
assert sorted(k) == ["ConfigMap", "Deployment", "Job", "NetworkPolicy", "PodDisruptionBudget",
                     "Service"], sorted(k)
d, cm = k["Deployment"], k["ConfigMap"]
labels = d["spec"]["template"]["metadata"]["labels"]
assert d["spec"]["replicas"] == 2
assert d["spec"]["selector"]["matchLabels"] == labels
pod = d["spec"]["template"]["spec"]
assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
(c,) = pod["containers"]
assert c["args"] == ["serve"]
for probe, path in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")]:
    assert c[probe]["httpGet"] == {"path": path, "port": "metrics"}, c[probe]
for kind in ("requests", "limits"):
    assert set(c["resources"][kind]) == {"cpu", "memory"}, c["resources"]
sc = c["securityContext"]
assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
assert sc["capabilities"]["drop"] == ["ALL"]
assert c["envFrom"] == [{"configMapRef": {"name": cm["metadata"]["name"]}}]
dsn, admin_dsn = c["env"]
assert dsn["name"] == "LOGBOOK_DATABASE_URL" and "secretKeyRef" in dsn["valueFrom"]
assert admin_dsn["name"] == "LOGBOOK_ADMIN_DATABASE_URL" and "secretKeyRef" in admin_dsn["valueFrom"]
assert dsn["valueFrom"]["secretKeyRef"]["name"] != admin_dsn["valueFrom"]["secretKeyRef"]["name"]
assert set(cm["data"]) <= env_names, set(cm["data"]) - env_names
ports = {p["name"]: p["containerPort"] for p in c["ports"]}
assert ports == {"grpc": 50051, "metrics": 9464}, ports
assert cm["data"]["LOGBOOK_LISTEN"].endswith(":50051")
assert cm["data"]["LOGBOOK_METRICS_LISTEN"].endswith(":9464")
mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
secrets = {v["name"]: v["secret"]["secretName"] for v in pod["volumes"]}
assert set(mounts) == set(secrets) == {"tls", "auth"}
assert cm["data"]["LOGBOOK_TLS_CERT"].startswith(mounts["tls"] + "/")
assert cm["data"]["LOGBOOK_AUTH_TOKENS"].startswith(mounts["auth"] + "/")
s = k["Service"]
assert s["spec"]["selector"] == labels
assert {p["targetPort"] for p in s["spec"]["ports"]} == set(ports)
j = k["Job"]["spec"]["template"]["spec"]
(m,) = j["containers"]
assert m["args"] == ["migrate"] and m["image"] == c["image"]
assert m["env"][0]["name"] == "LOGBOOK_MIGRATE_DATABASE_URL" and "secretKeyRef" in m["env"][0]["valueFrom"]
assert j["securityContext"]["runAsNonRoot"] is True
assert m["securityContext"]["readOnlyRootFilesystem"] is True
assert set(m["resources"]["limits"]) == {"cpu", "memory"}
pdb = k["PodDisruptionBudget"]["spec"]
assert pdb["selector"]["matchLabels"] == labels and 0 < pdb["minAvailable"] < d["spec"]["replicas"]
np = k["NetworkPolicy"]["spec"]
assert np["podSelector"]["matchLabels"] == labels
assert sorted(p["port"] for r in np["ingress"] for p in r["ports"]) == [9464, 50051]
assert 5432 in [p["port"] for r in np["egress"] for p in r["ports"]]

compose = yaml.safe_load(open(f"{deploy}/compose.yaml"))
svc = compose["services"]
assert sorted(svc) == ["logbookd", "migrate", "postgres", "prometheus"], sorted(svc)
assert svc["migrate"]["command"] == ["migrate"]
assert svc["migrate"]["build"]["dockerfile"] == "deploy/Containerfile"
assert svc["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
assert svc["logbookd"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
assert svc["logbookd"]["image"] == svc["migrate"]["image"]
assert all(p.startswith("127.0.0.1:") for s in svc.values() for p in s.get("ports", []))
for s in svc.values():
    for v in s.get("volumes", []):
        src = v.split(":")[0]
        if src.startswith("./"):
            assert os.path.isfile(os.path.join(deploy, src)), src
prom = yaml.safe_load(open(f"{deploy}/container/prometheus.yml"))
assert prom["scrape_configs"][0]["static_configs"][0]["targets"] == ["logbookd:9464"]
print("YAML checked")
PY
pass "the YAML files parse and have their fields"

# compose's roles script runs (in a transaction rolled back: the roles it
# makes exist in this cluster already, so it runs with their names changed).
sed -e "s/logbook_owner/ct_owner_$$/g; s/logbook_app/ct_app_$$/g; s/ROLE logbookd_admin/ROLE ct_admin_$$/" \
    -e "s/logbook_redactor/ct_redactor_$$/g; s/logbook_all_tenants/ct_all_$$/g" \
    -e "s/ROLE logbookd /ROLE ct_logbookd_$$ /" \
    -e "s/DATABASE logbook /DATABASE postgres /" "$deploy/container/init-roles.sql" >"$work/roles.sql"
grep -q "ct_app_$$" "$work/roles.sql" || fail "init-roles.sql names no logbook_app"
psql -X -q -v ON_ERROR_STOP=1 -1 "$LOGBOOK_TEST_ADMIN_DSN" -f "$work/roles.sql" \
  -c "DO \$\$ BEGIN IF NOT pg_has_role('ct_logbookd_$$', 'ct_app_$$', 'USAGE') THEN
        RAISE 'the login role is not in the application role'; END IF;
        IF NOT pg_has_role('ct_admin_$$', 'ct_all_$$', 'MEMBER') THEN
        RAISE 'the admin login role does not read every tenant'; END IF; END \$\$" \
  -c "ROLLBACK" >"$work/roles.out" 2>&1 ||
  fail "deploy/container/init-roles.sql: $(cat "$work/roles.out")"
pass "compose's init-roles.sql"

# 2. The Containerfile: two stages, its COPY sources exist, a non-root
#    numeric USER, and the entrypoint it runs is the script it copies.
python3 - "$root" <<'PY' || fail "deploy/Containerfile"
import os, re, sys
root = sys.argv[1]
lines = open(f"{root}/deploy/Containerfile").read().replace("\\\n", " ").splitlines()
cmds = [l.split(None, 1) for l in lines if l.strip() and not l.lstrip().startswith("#")]
froms = [a for c, a in cmds if c == "FROM"]
assert froms == ["debian:bookworm AS build", "debian:bookworm-slim"], froms
copied = {}
for c, a in cmds:
    if c == "COPY" and not a.startswith("--from"):
        *srcs, dest = a.split()
        for s in srcs:
            assert s == "." or os.path.exists(os.path.join(root, s)), s
            copied[s] = dest
(user,) = [a for c, a in cmds if c == "USER"]
uid = user.split(":")[0]
assert uid.isdigit() and int(uid) != 0, user
(entry,) = [a for c, a in cmds if c == "ENTRYPOINT"]
assert entry == f'["{copied["deploy/container/entrypoint.sh"]}"]', entry
assert [a for c, a in cmds if c == "CMD"] == ['["serve"]']
print("Containerfile checked")
PY
pass "deploy/Containerfile"

# 3. The runtime packages of this build's binaries: installed Debian packages.
pkgs=$("$deploy/container/runtime-packages.sh" "$LOGBOOKD" "$LOGBOOK_CLI") ||
  fail "runtime-packages.sh failed"
for p in libpqxx-6.4 libgrpc++1.51 libprotobuf32 libjwt0 libprometheus-cpp-core1.0; do
  grep -qx "$p" <<<"$pkgs" || fail "runtime-packages.sh left out $p: $(echo $pkgs)"
done
for p in $pkgs; do
  [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] ||
    fail "runtime-packages.sh named $p, which is not an installed package"
done
pass "runtime-packages.sh names the installed packages the binaries load ($(wc -w <<<"$pkgs"))"

# 4. The entrypoint, run here with the binaries of this build.
bin=$work/bin
mkdir -p "$bin" && ln -s "$LOGBOOKD" "$bin/logbookd" && ln -s "$LOGBOOK_CLI" "$bin/logbook"
entry=$deploy/container/entrypoint.sh
export LOGBOOK_BIN_DIR=$bin
check "an unknown command" 2 "unknown command 'bogus'" -- "$entry" bogus
check "migrate without its DSN" 2 "migrate needs LOGBOOK_MIGRATE_DATABASE_URL" -- \
  env -u LOGBOOK_MIGRATE_DATABASE_URL "$entry" migrate
db="container_$$"
psql -X -q -v ON_ERROR_STOP=1 "$LOGBOOK_TEST_ADMIN_DSN" -c "CREATE DATABASE $db OWNER logbook_owner" ||
  fail "cannot create a database"
base="postgresql://%s@127.0.0.1:$LOGBOOK_TEST_PG_PORT/$db"
LOGBOOK_MIGRATE_DATABASE_URL=$(printf "$base" logbook_owner) "$entry" migrate >"$work/migrate.out" 2>&1 ||
  fail "entrypoint migrate: $(cat "$work/migrate.out")"
[ "$(psql -X -At "$(printf "$base" logbook_admin)" -c "SELECT count(*) FROM logbook.schema_migrations")" = \
  "$(ls "$root"/migrations/[0-9]*.sql | wc -l)" ] || fail "migrate applied $(cat "$work/migrate.out")"
pass "entrypoint migrate, as the owner role"
check "entrypoint logbook" 0 "Usage: .*logbook" -- "$entry" logbook --help
# serve: logbookd as the application role, its options from the environment.
port=$(python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])")
LOGBOOK_DATABASE_URL=$(printf "$base" logbook_app) LOGBOOK_LISTEN=127.0.0.1:$port \
  LOGBOOK_ADMIN_DATABASE_URL=$(printf "$base" logbook_redactor) \
  LOGBOOK_LOG_FORMAT=json "$entry" serve 2>"$work/serve.log" &
server_pid=$!
for _ in $(seq 200); do grep -q "listening on 127.0.0.1:$port" "$work/serve.log" && break; sleep 0.05; done
grep -q '"message":"logbookd listening on 127.0.0.1:'"$port" "$work/serve.log" ||
  fail "entrypoint serve did not start: $(cat "$work/serve.log")"
export LOGBOOK_ADDRESS=127.0.0.1:$port
"$entry" logbook append c-1 --type Noted --data '{"n":1}' >/dev/null || fail "append through it"
check "read through it" 0 'c-1@0' -- "$entry" logbook read c-1
kill -TERM "$server_pid"
wait "$server_pid"
rc=$?
server_pid=""
[ "$rc" = 0 ] || fail "logbookd exited $rc on SIGTERM"
pass "entrypoint serve: logbookd as the application role, exit 0 on SIGTERM"
finish
