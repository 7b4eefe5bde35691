// The Grafana dashboards, one file each:
//   jsonnet -J mixin -m dashboards-out/ mixin/dashboards.jsonnet
// `config` is merged over config.libsonnet's _config, as in rules.jsonnet.
function(config={})
  local mixin = (import 'mixin.libsonnet') + { _config:: std.mergePatch(super._config, config) };
  mixin.grafanaDashboards
