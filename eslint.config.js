// ESLint: typescript-eslint's strict, type-checked rules; Prettier owns the layout.
// Tests and benchmarks read JSON answers whose shape the assertions check, so the no-unsafe-*
// family and non-null assertions are off there; everything else holds for them as for src/.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import prettier from 'eslint-config-prettier';

export default tseslint.config(
  // examples/ holds projects of their own, whose types come from their own installs: each checks
  // itself (tsc in its npm test), and an uninstalled one would fail every typed rule here.
  { ignores: ['dist/**', 'bench/.build/**', 'node_modules/**', 'coverage/**', 'examples/**'] },
  js.configs.recommended,
  ...tseslint.configs.strictTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      // Recurses without end on Mongoose's types (RangeError in 8.74): off until fixed upstream.
      '@typescript-eslint/no-unsafe-class-instance-assignment': 'off',
      // Fastify's hooks, handlers and plugins are async by contract, awaiting or not.
      '@typescript-eslint/require-await': 'off',
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true, allowBoolean: true }],
      '@typescript-eslint/no-confusing-void-expression': ['error', { ignoreArrowShorthand: true }],
      // Destructuring with a rest is how a copy leaves keys out; an argument a signature requires
      // (Express's four-argument error handler) is named with a leading underscore.
      '@typescript-eslint/no-unused-vars': ['error', { ignoreRestSiblings: true, argsIgnorePattern: '^_' }],
      // A handler's input is typed by its route schema (the TypeBox type provider): never cast.
      'no-restricted-syntax': [
        'error',
        {
          selector:
            "TSAsExpression > MemberExpression[object.name='request'][property.name=/^(params|query|body|headers)$/]",
          message: 'request parts are typed by the route schema; do not cast them.',
        },
      ],
    },
  },
  {
    files: ['test/**', 'bench/**'],
    rules: {
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/no-non-null-assertion': 'off',
      '@typescript-eslint/no-explicit-any': 'off',
    },
  },
  {
    // Migrations and the root configs are plain JavaScript outside the TypeScript project.
    files: ['**/*.js'],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: {
      ...tseslint.configs.disableTypeChecked.languageOptions,
      globals: { process: 'readonly', console: 'readonly', URL: 'readonly', performance: 'readonly' },
    },
  },
  prettier,
);
