"""The Kafka ACLs and Redis ACL users of a deployment (R22/R23): one principal per part,
each with only what it needs.

This table is the one source: the secured test broker is given exactly these ACLs
(tests/integration/test_r23_transport.py), and `python -m services.common.acl_table`
prints them as `kafka-acls.sh` commands for an operator (topic names, groups and
transactional ids follow the `HANDOFF_TOPIC_*` settings, prefix included).

Topics are created by the deployment's admin principal (`python -m services.common.topics`
run with its credentials); no service principal may create or delete topics.
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass
from typing import Literal

from services.common.settings import CommonSettings

ResourceType = Literal["topic", "group", "transactional-id"]
PatternType = Literal["literal", "prefixed"]


@dataclass(frozen=True)
class Acl:
    """ALLOW `principal` to do `operation` on one resource (any host)."""

    principal: str  # User:<name>
    resource: ResourceType
    name: str
    pattern: PatternType
    operation: Literal["Read", "Write", "Describe"]


@dataclass(frozen=True)
class Grant:
    """What one part of the system does with Kafka."""

    reads: tuple[str, ...] = ()  # topics
    writes: tuple[str, ...] = ()  # topics
    groups: tuple[str, ...] = ()  # consumer groups it commits offsets of
    transactional: tuple[str, ...] = ()  # service names of its transactional producers


# Every principal of the deployment, by the name its SCRAM user (or certificate CN) has.
PRINCIPALS = ("channels", "agents", "router", "handoff", "timeout", "api", "ops")


def grants(settings: CommonSettings) -> dict[str, Grant]:
    """The table. A transactional processor also dead-letters what it cannot handle."""
    t = settings.topics
    return {
        # Web chat and your channel gateways: users' messages in, replies out (no group:
        # every instance follows every partition of chat.outbound).
        # What users are sent, and (the web chat's header: who is answering) their tickets.
        "channels": Grant(reads=(t.outbound, t.events), writes=(t.inbound,)),
        # Agents: the routed messages in, answers and handoffs out; and their versions, from
        # the agent_version_* records of handoff.events (group `agent-versions`).
        "agents": Grant(
            reads=(t.ai_requests, t.events),
            writes=(t.agent_replies, t.commands, t.dead_letter),
            groups=("agent", "agent-versions"),
            transactional=("agent",),
        ),
        "router": Grant(
            reads=(t.inbound, t.agent_replies),
            writes=(t.ai_requests, t.human_queue, t.outbound, t.dead_letter),
            groups=("router", "reply-gate"),
            transactional=("router", "reply-gate"),
        ),
        # Commands in (agents' and operators'), external desks' replies on chat.outbound
        # (R19), the analytics of handoff.events and chat.outbound (R21), and the desk feed
        # (no group) of tickets and events. The operator API's changes go through the shard
        # outbox (the timeout relay).
        "handoff": Grant(
            reads=(t.commands, t.operator_commands, t.outbound, t.human_queue, t.events),
            writes=(t.events, t.outbound, t.human_queue, t.dead_letter),
            groups=("handoff", "desk-replies", "analytics"),
            transactional=("handoff", "desk-replies", "analytics"),
        ),
        # The sweeper and the outbox relay: shards are its group's partitions.
        "timeout": Grant(
            reads=(t.timeout_shards,),
            writes=(t.events, t.outbound, t.human_queue),
            groups=("timeout",),
            transactional=("timeout",),
        ),
        # An operator API or integration deployed apart, speaking for operators (R22).
        "api": Grant(writes=(t.operator_commands,)),
        # handoffctl and the demo: read everything, act as an operator, answer as the desk,
        # redrive dead letters into chat.inbound.
        "ops": Grant(
            reads=tuple(t.all()),
            writes=(t.operator_commands, t.outbound, t.events, t.inbound),
        ),
    }


def acls(settings: CommonSettings) -> list[Acl]:
    """Every ACL of the table, for the principals `User:<part>`."""
    out: list[Acl] = []
    for part, grant in grants(settings).items():
        who = f"User:{part}"
        for topic in grant.reads:
            out += [Acl(who, "topic", topic, "literal", op) for op in ("Read", "Describe")]
        for topic in grant.writes:
            out += [Acl(who, "topic", topic, "literal", op) for op in ("Write", "Describe")]
        for service in grant.groups:
            out.append(Acl(who, "group", settings.group_id(service), "literal", "Read"))
        for service in grant.transactional:
            prefix = settings.transactional_id(service).removesuffix(settings.instance_id)
            out += [
                Acl(who, "transactional-id", prefix, "prefixed", op) for op in ("Write", "Describe")
            ]
    return sorted(set(out), key=lambda a: (a.principal, a.resource, a.name, a.operation))


def kafka_acls_commands(settings: CommonSettings, bootstrap: str, config: str) -> list[str]:
    """One `kafka-acls.sh --add` per ACL, run with the admin's client config file."""
    flag = {"topic": "--topic", "group": "--group", "transactional-id": "--transactional-id"}
    commands = []
    for a in acls(settings):
        args = [
            "kafka-acls.sh", "--bootstrap-server", bootstrap, "--command-config", config,
            "--add", "--allow-principal", a.principal, "--operation", a.operation,
            flag[a.resource], a.name, "--resource-pattern-type", a.pattern,
        ]  # fmt: skip
        commands.append(shlex.join(args))
    return commands


# Redis: the parts that hold state, each as its own ACL user, on Handoff's keys only
# (`ho:*`; the agents on their own, `agent:*`, and never Handoff's). Commands: reads and
# writes, the functions and scripts the state code runs (and FUNCTION LOAD: every service
# loads the library at start), TIME (the functions' clock), the cluster's slot map, and
# nothing @dangerous (no FLUSH*, KEYS, CONFIG, DEBUG).
REDIS_USERS = ("router", "handoff", "timeout", "agents", "ops", "webchat")
REDIS_KEYS = {"agents": "~agent:*"}  # the rest: "~ho:*"
REDIS_RULES = (
    "resetkeys", "~ho:*", "resetchannels", "-@all",
    "+@read", "+@write", "+@scripting", "+@connection", "+@transaction", "-@dangerous",
    "-function|flush", "-function|delete", "-function|restore", "+function|load",
    "+time", "+cluster|slots", "+cluster|shards", "+cluster|nodes",
)  # fmt: skip


# The web chat gateway only reads its users' own state and transcript (no functions, no
# writes).
REDIS_READ_ONLY_RULES = (
    "resetkeys", "~ho:*", "resetchannels", "-@all",
    "+@read", "+@connection", "-@dangerous", "+cluster|slots", "+cluster|shards",
    "+cluster|nodes",
)  # fmt: skip
READ_ONLY_REDIS_USERS = frozenset({"webchat"})


def redis_acl_rules(password: str, user: str) -> list[str]:
    """`ACL SETUSER <user>` arguments (or an aclfile line after `user <user>`)."""
    rules = REDIS_READ_ONLY_RULES if user in READ_ONLY_REDIS_USERS else REDIS_RULES
    keys = REDIS_KEYS.get(user, "~ho:*")
    return ["reset", "on", f">{password}", *(keys if r == "~ho:*" else r for r in rules)]


def setup_script(settings: CommonSettings, bootstrap: str, config: str) -> str:
    """A POSIX shell script, run as the admin in the apache/kafka image: each principal's
    SCRAM credentials (from /run/secrets/kafka-<principal>), then every ACL."""
    users = " ".join(PRINCIPALS)
    return "\n".join(
        [
            "#!/bin/sh",
            "# Generated: python -m services.common.acl_table --setup-script > this file",
            "# (tests/unit/test_compose.py checks it is the table's current output).",
            "set -eu",
            "export PATH=/opt/kafka/bin:$PATH",
            f"for user in {users}; do",
            f"  kafka-configs.sh --bootstrap-server {bootstrap} --command-config {config} \\",
            '    --alter --entity-type users --entity-name "$user" \\',
            '    --add-config "SCRAM-SHA-512=[password=$(cat /run/secrets/kafka-$user)]"',
            "done",
            *kafka_acls_commands(settings, bootstrap, config),
            "",
        ]
    )


# Where the compose file's secured profile reaches the broker, as its admin.
COMPOSE_BOOTSTRAP = "kafka:9094"
COMPOSE_ADMIN_CONFIG = "/run/secrets/kafka-admin.properties"


def main() -> None:
    """`python -m services.common.acl_table [ADMIN_CLIENT_CONFIG]`: the commands to run
    (Kafka ACLs, then Redis ACL users); `--setup-script`: the compose profile's script."""
    settings = CommonSettings()
    if sys.argv[1:] == ["--setup-script"]:
        print(setup_script(settings, COMPOSE_BOOTSTRAP, COMPOSE_ADMIN_CONFIG), end="")
        return
    config = sys.argv[1] if len(sys.argv) > 1 else "admin.properties"
    print("\n".join(kafka_acls_commands(settings, settings.kafka_bootstrap, config)))
    for user in REDIS_USERS:
        password = f'">${{{user.upper()}_REDIS_PASSWORD}}"'  # expanded by the operator's shell
        rules = shlex.join(redis_acl_rules("-", user)[3:])  # the rules after the password
        print(f"redis-cli ACL SETUSER {user} reset on {password} {rules}")


if __name__ == "__main__":
    main()
