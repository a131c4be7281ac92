import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import { defineConfig } from 'eslint/config';
import { testTimeoutRule } from './scripts/lint/test-timeout-rule.mjs';

export default defineConfig(
  { ignores: ['dist/**', 'node_modules/**', 'console/**', 'data/**', '.tmp/**', 'bench/results/**', 'bench/.build/**', '.dependency-cruiser.cjs'] },
  js.configs.recommended,
  tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': ['error', {
        allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['test', 'it', 'describe', 'suite'] }],
      }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    // Every test and hook has a timeout, so a broken limit fails fast (docs/testing.md).
    files: ['src/**/*.ts', 'test/**/*.ts', 'bench/**/*.ts'],
    plugins: { gatehouse: { rules: { 'test-timeout': testTimeoutRule } } },
    rules: { 'gatehouse/test-timeout': 'error' },
  },
  {
    files: ['**/*.js', '**/*.mjs', '**/*.cjs'],
    extends: [tseslint.configs.disableTypeChecked],
    languageOptions: { globals: { process: 'readonly', URL: 'readonly', console: 'readonly', module: 'writable', require: 'readonly' } },
  },
);
