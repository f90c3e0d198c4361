#!/bin/sh
# Generated: python -m services.common.acl_table --setup-script > this file
# (tests/unit/test_compose.py checks it is the table's current output).
set -eu
export PATH=/opt/kafka/bin:$PATH
for user in channels agents router handoff timeout api ops; do
  kafka-configs.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties \
    --alter --entity-type users --entity-name "$user" \
    --add-config "SCRAM-SHA-512=[password=$(cat /run/secrets/kafka-$user)]"
done
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:agents --operation Read --group handoff-agent --resource-pattern-type literal
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:agents --operation Describe --topic agent.replies --resource-pattern-type literal
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:agents --operation Write --topic agent.replies --resource-pattern-type literal
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:agents --operation Describe --topic chat.ai-requests --resource-pattern-type literal
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:agents --operation Read --topic chat.ai-requests --resource-pattern-type literal
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:agents --operation Describe --topic chat.dead-letter --resource-pattern-type literal
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:agents --operation Write --topic chat.dead-letter --resource-pattern-type literal
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:agents --operation Describe --topic handoff.commands --resource-pattern-type literal
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:agents --operation Write --topic handoff.commands --resource-pattern-type literal
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:agents --operation Describe --transactional-id handoff-agent- --resource-pattern-type prefixed
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:agents --operation Write --transactional-id handoff-agent- --resource-pattern-type prefixed
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:api --operation Describe --topic handoff.operator-commands --resource-pattern-type literal
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:api --operation Write --topic handoff.operator-commands --resource-pattern-type literal
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:channels --operation Describe --topic chat.inbound --resource-pattern-type literal
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:channels --operation Write --topic chat.inbound --resource-pattern-type literal
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:channels --operation Describe --topic chat.outbound --resource-pattern-type literal
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:channels --operation Read --topic chat.outbound --resource-pattern-type literal
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:channels --operation Describe --topic handoff.events --resource-pattern-type literal
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:channels --operation Read --topic handoff.events --resource-pattern-type literal
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:handoff --operation Read --group handoff-analytics --resource-pattern-type literal
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:handoff --operation Read --group handoff-desk-replies --resource-pattern-type literal
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:handoff --operation Read --group handoff-handoff --resource-pattern-type literal
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:handoff --operation Describe --topic chat.dead-letter --resource-pattern-type literal
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:handoff --operation Write --topic chat.dead-letter --resource-pattern-type literal
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:handoff --operation Describe --topic chat.human-queue --resource-pattern-type literal
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:handoff --operation Read --topic chat.human-queue --resource-pattern-type literal
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:handoff --operation Write --topic chat.human-queue --resource-pattern-type literal
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:handoff --operation Describe --topic chat.outbound --resource-pattern-type literal
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:handoff --operation Read --topic chat.outbound --resource-pattern-type literal
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:handoff --operation Write --topic chat.outbound --resource-pattern-type literal
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:handoff --operation Describe --topic handoff.commands --resource-pattern-type literal
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:handoff --operation Read --topic handoff.commands --resource-pattern-type literal
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:handoff --operation Describe --topic handoff.events --resource-pattern-type literal
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:handoff --operation Read --topic handoff.events --resource-pattern-type literal
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:handoff --operation Write --topic handoff.events --resource-pattern-type literal
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:handoff --operation Describe --topic handoff.operator-commands --resource-pattern-type literal
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:handoff --operation Read --topic handoff.operator-commands --resource-pattern-type literal
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:handoff --operation Describe --transactional-id handoff-analytics- --resource-pattern-type prefixed
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:handoff --operation Write --transactional-id handoff-analytics- --resource-pattern-type prefixed
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:handoff --operation Describe --transactional-id handoff-desk-replies- --resource-pattern-type prefixed
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:handoff --operation Write --transactional-id handoff-desk-replies- --resource-pattern-type prefixed
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:handoff --operation Describe --transactional-id handoff-handoff- --resource-pattern-type prefixed
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:handoff --operation Write --transactional-id handoff-handoff- --resource-pattern-type prefixed
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:ops --operation Describe --topic agent.replies --resource-pattern-type literal
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:ops --operation Read --topic agent.replies --resource-pattern-type literal
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:ops --operation Describe --topic chat.ai-requests --resource-pattern-type literal
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:ops --operation Read --topic chat.ai-requests --resource-pattern-type literal
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:ops --operation Describe --topic chat.dead-letter --resource-pattern-type literal
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:ops --operation Read --topic chat.dead-letter --resource-pattern-type literal
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:ops --operation Describe --topic chat.human-queue --resource-pattern-type literal
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:ops --operation Read --topic chat.human-queue --resource-pattern-type literal
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:ops --operation Describe --topic chat.inbound --resource-pattern-type literal
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:ops --operation Read --topic chat.inbound --resource-pattern-type literal
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:ops --operation Write --topic chat.inbound --resource-pattern-type literal
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:ops --operation Describe --topic chat.outbound --resource-pattern-type literal
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:ops --operation Read --topic chat.outbound --resource-pattern-type literal
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:ops --operation Write --topic chat.outbound --resource-pattern-type literal
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:ops --operation Describe --topic handoff.commands --resource-pattern-type literal
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:ops --operation Read --topic handoff.commands --resource-pattern-type literal
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:ops --operation Describe --topic handoff.events --resource-pattern-type literal
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:ops --operation Read --topic handoff.events --resource-pattern-type literal
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:ops --operation Write --topic handoff.events --resource-pattern-type literal
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:ops --operation Describe --topic handoff.operator-commands --resource-pattern-type literal
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:ops --operation Read --topic handoff.operator-commands --resource-pattern-type literal
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:ops --operation Write --topic handoff.operator-commands --resource-pattern-type literal
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:ops --operation Describe --topic handoff.timeout-shards --resource-pattern-type literal
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:ops --operation Read --topic handoff.timeout-shards --resource-pattern-type literal
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:router --operation Read --group handoff-reply-gate --resource-pattern-type literal
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:router --operation Read --group handoff-router --resource-pattern-type literal
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:router --operation Describe --topic agent.replies --resource-pattern-type literal
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:router --operation Read --topic agent.replies --resource-pattern-type literal
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:router --operation Describe --topic chat.ai-requests --resource-pattern-type literal
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:router --operation Write --topic chat.ai-requests --resource-pattern-type literal
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:router --operation Describe --topic chat.dead-letter --resource-pattern-type literal
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:router --operation Write --topic chat.dead-letter --resource-pattern-type literal
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:router --operation Describe --topic chat.human-queue --resource-pattern-type literal
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:router --operation Write --topic chat.human-queue --resource-pattern-type literal
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:router --operation Describe --topic chat.inbound --resource-pattern-type literal
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:router --operation Read --topic chat.inbound --resource-pattern-type literal
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:router --operation Describe --topic chat.outbound --resource-pattern-type literal
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:router --operation Write --topic chat.outbound --resource-pattern-type literal
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:router --operation Describe --transactional-id handoff-reply-gate- --resource-pattern-type prefixed
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:router --operation Write --transactional-id handoff-reply-gate- --resource-pattern-type prefixed
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:router --operation Describe --transactional-id handoff-router- --resource-pattern-type prefixed
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:router --operation Write --transactional-id handoff-router- --resource-pattern-type prefixed
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:timeout --operation Read --group handoff-timeout --resource-pattern-type literal
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:timeout --operation Describe --topic chat.human-queue --resource-pattern-type literal
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:timeout --operation Write --topic chat.human-queue --resource-pattern-type literal
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:timeout --operation Describe --topic chat.outbound --resource-pattern-type literal
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:timeout --operation Write --topic chat.outbound --resource-pattern-type literal
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:timeout --operation Describe --topic handoff.events --resource-pattern-type literal
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:timeout --operation Write --topic handoff.events --resource-pattern-type literal
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:timeout --operation Describe --topic handoff.timeout-shards --resource-pattern-type literal
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:timeout --operation Read --topic handoff.timeout-shards --resource-pattern-type literal
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:timeout --operation Describe --transactional-id handoff-timeout- --resource-pattern-type prefixed
kafka-acls.sh --bootstrap-server kafka:9094 --command-config /run/secrets/kafka-admin.properties --add --allow-principal User:timeout --operation Write --transactional-id handoff-timeout- --resource-pattern-type prefixed
