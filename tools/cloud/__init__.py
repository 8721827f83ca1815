"""Local Aliyun-compatible cloud: MQTT broker with Aliyun auth rules, HTTPS auth, registry, log."""
