#!/usr/bin/python3
"""Static checks of compose.yaml and Dockerfile (no Docker engine here).

Every compose service builds a Dockerfile stage of its own name, that stage
copies the binary CMake builds under that name and runs it; every variable
compose sets is one the service reads (DESIGN §2 or its own table); URLs that
a service dials name a compose service that listens on that port.
"""
import re
import sys

import yaml

root = sys.argv[1]
failures = 0
passes = 0


def check(cond, what):
    global failures, passes
    print(("ok - " if cond else "not ok - ") + what)
    if cond:
        passes += 1
    else:
        failures += 1


with open(f"{root}/compose.yaml") as f:
    compose = yaml.safe_load(f)
with open(f"{root}/Dockerfile") as f:
    dockerfile = f.read()

stages = dict(re.findall(r"^FROM \S+ AS (\S+)\n(.*?)(?=^FROM |\Z)",
                         dockerfile, re.M | re.S))
services = compose["services"]
check(set(services) == {"gateway", "session-svc", "store-svc", "notifier-svc"},
      "compose runs exactly the four services")

# Variables each binary reads: the spec tables in its sources.
reads = {}
for svc in services:
    src = ""
    for path in (f"{root}/{svc}/main.c", f"{root}/proto/include/wa/auth.h",
                 f"{root}/proto/include/wa/log.h"):
        with open(path) as f:
            text = f.read()
        if path.endswith("auth.h") and "WA_AUTH_CONFIG_SPECS" not in open(
                f"{root}/{svc}/main.c").read():
            continue
        src += text
    reads[svc] = set(re.findall(r'SPEC\(\s*"([A-Z_]+)"', src))

listens = {}
for name, svc in services.items():
    target = svc.get("build", {}).get("target")
    check(target == name, f"{name}: builds Dockerfile target {name}")
    stage = stages.get(name, "")
    check(f"/build/bin/{name} " in stage,
          f"{name}: Dockerfile stage copies build/bin/{name}")
    check(f'ENTRYPOINT ["/usr/local/bin/{name}"]' in stage,
          f"{name}: Dockerfile stage runs {name}")
    env = svc.get("environment", {})
    for var in env:
        check(var in reads[name], f"{name}: reads {var}")
    for var, value in env.items():
        m = re.match(r"tcp://0\.0\.0\.0:(\d+)$", str(value))
        if m:
            listens[(name, m.group(1))] = var

for name, svc in services.items():
    for var, value in svc.get("environment", {}).items():
        m = re.match(r"tcp://([a-z-]+):(\d+)$", str(value))
        if m and m.group(1) != "0.0.0.0":
            check((m.group(1), m.group(2)) in listens,
                  f"{name}: {var} dials {m.group(1)}:{m.group(2)}, which listens")

check(compose["services"]["store-svc"]["environment"]["DB_PATH"].startswith("/data/"),
      "store-svc keeps its database on the db volume")
check(any(v.startswith("sessions:") for v in services["session-svc"]["volumes"]),
      "session-svc keeps profiles on a volume")
# Replicas (--scale) must each register an address of their own: a shared
# name would reach any one of them. session-svc advertises its container's
# address when it listens on every interface and no advertise URL is set.
ss_env = services["session-svc"].get("environment", {})
check(str(ss_env.get("SESSION_URL", "")).startswith("tcp://0.0.0.0:") and
      "SESSION_ADVERTISE_URL" not in ss_env and "INSTANCE_ID" not in ss_env
      and "container_name" not in services["session-svc"],
      "session-svc scales: each replica advertises its own address and id")

print(f"{passes} passed, {failures} failed")
sys.exit(1 if failures else 0)
