// Types of scripts/build.mjs for the TypeScript that imports it (tests, bench).
export declare const ROOT: string;
export declare const DIST: string;
export declare const ENTRIES: Record<string, string>;
export declare function buildEntries(entries: Record<string, string>, outdir: string): Promise<void>;
export declare function ensureBuilt(): Promise<void>;
