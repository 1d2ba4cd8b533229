// Two projects: unit tests beside the code (pure logic, no cluster) and integration tests
// in test/ that run the operator against a real kube-apiserver, etcd and kwok.
const esm = ['@kubernetes/client-node', 'openid-client', 'oauth4webapi', 'jose'];
const common = {
  testEnvironment: 'node',
  // Local control planes' state (etcd's own .snap files are not Jest snapshots).
  modulePathIgnorePatterns: ['<rootDir>/.cluster'],
  transform: { '^.+\\.[tj]s$': ['ts-jest', { tsconfig: 'tsconfig.jest.json' }] },
  transformIgnorePatterns: [`/node_modules/(?!(${esm.join('|')})/)`],
};

/** @type {import('jest').Config} */
module.exports = {
  // Integration test files share one control plane; each runs its own operator process.
  maxWorkers: 1,
  projects: [
    { ...common, displayName: 'unit', testMatch: ['<rootDir>/src/**/*.test.ts', '<rootDir>/test/unit/**/*.test.ts'] },
    {
      ...common,
      displayName: 'integration',
      testMatch: ['<rootDir>/test/*.test.ts'],
      globalSetup: '<rootDir>/test/cluster/globalSetup.ts',
      globalTeardown: '<rootDir>/test/cluster/globalTeardown.ts',
      setupFilesAfterEnv: ['<rootDir>/test/cluster/timeouts.ts'],
    },
  ],
};
