// qlobber ships no types and there is no @types/qlobber; this covers what Gatehouse uses.
declare module 'qlobber' {
  export interface QlobberOptions {
    separator?: string;
    wildcard_one?: string;
    wildcard_some?: string;
    match_empty_levels?: boolean;
    cache_adds?: boolean;
    /** Most levels in a topic; deeper topics throw 'too many words' (default 100). */
    max_words?: number;
  }
  export class Qlobber<V = unknown> {
    constructor(options?: QlobberOptions);
    add(topic: string, value: V): this;
    remove(topic: string, value?: V): this;
    match(topic: string): V[];
    test(topic: string, value: V): boolean;
    clear(): this;
  }
  export class QlobberDedup<V = unknown> {
    constructor(options?: QlobberOptions);
    add(topic: string, value: V): this;
    remove(topic: string, value?: V): this;
    match(topic: string): Set<V>;
    test(topic: string, value: V): boolean;
    clear(): this;
  }
}
