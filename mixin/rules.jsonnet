// The whole rule file (recording rules and alerts) as JSON, which Prometheus and promtool read as YAML:
//   jsonnet -J mixin mixin/rules.jsonnet > queuelens.rules.yml
//   jsonnet -J mixin --tla-code 'config={links: {runbookBaseUrl: "https://wiki.example.com/runbooks"}}' mixin/rules.jsonnet
// `config` is merged over config.libsonnet's _config (std.mergePatch: nested objects merge, lists replace).
function(config={})
  local mixin = (import 'mixin.libsonnet') + { _config:: std.mergePatch(super._config, config) };
  mixin.ruleFile
