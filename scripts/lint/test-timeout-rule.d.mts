// Types of scripts/lint/test-timeout-rule.mjs for the TypeScript that imports it (its test).
import type { Rule } from 'eslint';
export declare const testTimeoutRule: Rule.RuleModule;
