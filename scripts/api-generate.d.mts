// Types of scripts/api-generate.mjs for the TypeScript that imports it (tests).
export declare const ROOT: string;
export declare const TYPES_FILE: string;
export declare function generateApiTypes(): Promise<string>;
export declare function firstDifference(expected: string, actual: string): { line: number; expected: string; actual: string } | null;
