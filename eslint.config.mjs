// ESLint for the TypeScript sources (lib/, test/). Formatting is Prettier's job.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  // Plain JavaScript (scripts/, esm/, the smoke test) is small and run by the tests themselves.
  { ignores: ['dist/**', 'build/**', 'build-asan/**', 'node_modules/**', '.bench/**', '**/*.js', '**/*.cjs', '**/*.mjs', 'scripts/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    rules: {
      // require() is how the addon and optional modules are loaded on purpose (lib/binding.ts).
      '@typescript-eslint/no-require-imports': 'off',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
    },
  },
);
