/** The dependency direction of ARCHITECTURE.md, enforced by `npm test` (npm run deps). */
const forbid = (name, from, to, comment) => ({ name, comment, severity: 'error', from: { path: from }, to: { path: to } });

module.exports = {
  forbidden: [
    forbid('core-is-a-leaf', '^src/core/', '^src/(?!core/)', 'core is shared by everyone and imports nothing of ours'),
    forbid('mqtt-knows-no-sockets', '^src/mqtt/', '^src/(?!mqtt/|core/)', 'protocol knowledge only'),
    forbid('broker-knows-no-gateway', '^src/broker/', '^src/(gateway|registry|storage|api|platform|cluster|sandbox|cli)/', 'the engine knows nothing of gateways or products'),
    forbid('sandbox-knows-no-mqtt', '^src/sandbox/', '^src/(?!sandbox/|core/)', 'the sandbox runs scripts and nothing else'),
    forbid('registry-through-ports', '^src/registry/', '^src/(gateway|broker|storage|api|platform|cluster)/', 'the registry talks to storage through its ports and to the runtime through events'),
    forbid('storage-below-registry', '^src/storage/', '^src/(gateway|api|platform|cluster)/', 'storage implements the registry ports'),
    {
      name: 'storage-uses-engine-types-only',
      comment: 'the engine persistence store implements broker types but runs no engine code',
      severity: 'error',
      from: { path: '^src/storage/' },
      to: { path: '^src/broker/', dependencyTypesNot: ['type-only'] },
    },
    forbid('api-above-registry', '^src/api/', '^src/(gateway|broker|storage)/', 'the API calls registry services'),
    forbid('gateway-not-api', '^src/gateway/', '^src/(api|storage)/', 'the data plane reads through registry ports'),
    forbid('cluster-implements-ports', '^src/cluster/', '^src/(gateway|api|storage|sandbox|cli)/',
      'src/cluster/ implements the engine\'s cluster link and the registry\'s event bus, through their public surfaces only'),
    {
      name: 'cluster-knows-the-platform-port-only',
      comment: 'src/cluster/ implements the platform\'s peers port (platform/peers.ts) and knows its types, nothing else of the platform',
      severity: 'error',
      from: { path: '^src/cluster/' },
      to: { path: '^src/platform/', pathNot: '^src/platform/peers\\.ts$' },
    },
    {
      name: 'cluster-imports-the-platform-port-as-types',
      comment: 'the platform port is types only: a node loads no platform code through src/cluster/',
      severity: 'error',
      from: { path: '^src/cluster/' },
      to: { path: '^src/platform/peers\\.ts$', dependencyTypesNot: ['type-only'] },
    },
    {
      name: 'only-the-root-starts-a-cluster',
      comment: 'the engine and the registry learn ports, not NATS: only the composition root (app.ts) wires src/cluster/ in',
      severity: 'error',
      from: { path: '^src/', pathNot: '^src/(cluster/|app\\.ts$)' },
      to: { path: '^src/cluster/' },
    },
    forbid('client-is-standalone', '^src/client/', '^src/(?!client/)', 'the API client is bundled into the console: it knows the API only through its generated types'),
    {
      name: 'client-runs-in-browsers',
      comment: 'the console bundles src/client/: no Node built-in modules there',
      severity: 'error',
      from: { path: '^src/client/' },
      to: { dependencyTypes: ['core'] },
    },
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'cycles of runtime imports (type-only imports are allowed)',
      from: { path: '^src/' },
      to: { circular: true, dependencyTypesNot: ['type-only'] },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    exclude: { path: '\\.test\\.ts$' },
  },
};
