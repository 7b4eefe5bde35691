// queuelens monitoring mixin: Prometheus recording and alerting rules and Grafana dashboards for BullMQ queues
// watched by the queuelens sidecar. Use it as any monitoring mixin:
//   (import 'mixin.libsonnet') + { _config+:: { exporterJob: 'bullmq', links+: { runbookBaseUrl: 'https://…' } } }
// and read prometheusRules, prometheusAlerts and grafanaDashboards. config.libsonnet lists every setting.
local rules = import 'rules/rules.libsonnet';

(import 'config.libsonnet') + {
  local groups = rules($._config),
  local isAlertGroup(g) = std.length([r for r in g.rules if std.objectHas(r, 'alert')]) > 0,

  // Recording rules (queuelens.rates, queuelens.slo); the alerts read them.
  prometheusRules+:: { groups+: [g for g in groups if !isAlertGroup(g)] },
  prometheusAlerts+:: { groups+: [g for g in groups if isAlertGroup(g)] },
  // Both, in the order of alerts/queuelens.rules.yml: one rule file for Prometheus.
  ruleFile:: { groups: groups },

  grafanaDashboards+:: {
    'queuelens-overview.json': (import 'dashboards/queuelens-overview.libsonnet')($._config),
    'queuelens-queue.json': (import 'dashboards/queuelens-queue.libsonnet')($._config),
  },
}
