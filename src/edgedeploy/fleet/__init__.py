"""The fleet: staged over-the-air model rollouts to many devices over an MQTT 5 broker.

| module | what it does |
|---|---|
| ``messages`` | MQTT topics and the signed desired-state envelope (sequence number, expiry) |
| ``transport`` | one MQTT 5 client (QoS 1, persistent session, TLS, credentials, reconnects) |
| ``artifacts`` | packing a signed deployment, resumable download, verify-then-unpack |
| ``gates`` | the device's checks after a swap (loads, golden input, p99, RSS, error rate) |
| ``agent`` | ``edgedeploy agent``: reports, follows its desired state, two slots, swaps and rolls back |
| ``plan`` | the YAML rollout plan, validated once |
| ``store`` | the controller's SQLite state (devices, rollouts, assignments, sequence) |
| ``controller`` | drives rollouts stage by stage; serves artifacts (HTTP, Range) and the dashboard |

Nothing here imports an engine at start-up; the agent serves through :mod:`edgedeploy.serving`.
"""
