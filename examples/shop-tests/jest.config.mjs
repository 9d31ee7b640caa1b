// jest runs the ESM test files as they are, under Node's own module loader
// (--experimental-vm-modules, see the test:jest script): no transform, so no Babel or ts-jest.
/** @type {import('jest').Config} */
export default {
  testEnvironment: 'node',
  transform: {},
  roots: ['<rootDir>/test/jest'],
  testMatch: ['**/*.test.mjs'],
  // startShop starts a mongod for the file (seconds; more under Wine on a busy machine).
  testTimeout: 60_000,
};
