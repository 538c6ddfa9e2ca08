# badges: organizations, then the Credly template sync, then the configuration (BADGES_CONFIG_YAML);
# each step is idempotent, so the init task can run on every launch
{% if BADGES_CONFIG_YAML %}
{% for org in BADGES_CONFIG_YAML|badges_organizations %}
badges org add --uuid {{ org.uuid }} --api-key-env {{ org.api_key_env }}
{% endfor %}
badges templates sync
badges config apply /etc/badges/config.yaml
{% else %}
echo "badges: BADGES_CONFIG_YAML is empty, no configuration applied (tutor config save --set BADGES_CONFIG_YAML=...)"
{% endif %}
