"""The fleet: staged over-the-air model rollouts to many devices over an MQTT 5 broker.

| module | what it does |
|---|---|
| ``messages`` | MQTT topics and the signed desired-state envelope (sequence number, expiry) |
| ``transport`` | one MQTT 5 client (QoS 1, persistent session, TLS, credentials, reconnects) |
| ``artifacts`` | packing a signed deployment, resumable download, verify-then-unpack |
| ``gates`` | the device's checks after a swap (loads, golden input, p99, RSS, error rate) |
| ``runtime`` | the agent's serving runtime (``serve``'s ModelServer, counting inferences per version) |
| ``remote`` | ``fleet bench --on``: signed jobs, devices measure with ``bench``'s machinery |
| ``broker`` | a private mosquitto on loopback for tests, demos and benchmarks |
| ``agent`` | ``edgedeploy agent``: reports, follows its desired state, two slots, swaps and rolls back |
| ``plan`` | the YAML rollout plan, validated once |
| ``rollouts`` | create a rollout from a plan, start/pause/resume/abort it, read its status (CLI, dashboard) |
| ``store`` | the controller's SQLite state (devices, rollouts, assignments, sequence) |
| ``controller`` | drives rollouts stage by stage (A/B stages too) and applies the failure policy |
| ``dashboard`` | the controller's HTTP: artifacts (Range requests), JSON API, web dashboard |

Nothing here imports an engine at start-up; the agent serves through :mod:`edgedeploy.serving`.
"""
